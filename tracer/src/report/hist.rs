//! Log2 histograms in the layout of BCC's funclatency (`print_log2_hist` in
//! bcc/table.py), shared by every command that shows one.
//!
//! Buckets use BCC's `bpf_log2l` slots: `buckets[s]` for `s >= 1` counts values
//! in `[2^(s-1), 2^s - 1]` (slot 1 holds 0 and 1). `buckets[0]` is not a
//! range: callers may keep values without a slot there (negative values of a
//! signed field); `render` prints it as a `negative` line only when non-zero.
//! The kernel side computes slots with `tracer_common::log2_slot`.
use std::fmt::Write as _;

/// The inclusive value range of slot `s >= 1`.
pub fn bucket_range(s: usize) -> (u64, u64) {
    let high = if s >= 64 { u64::MAX } else { (1u64 << s) - 1 };
    let low = if s <= 1 { 0 } else { 1u64 << (s - 1) };
    (low, high)
}

const STARS_MAX: usize = 40;

/// BCC's `_stars`: `floor(width * val / max)` stars (none when max is 0).
fn stars(val: u64, max: u64, width: usize) -> String {
    let n = (width as u128 * val as u128).checked_div(max as u128);
    "*".repeat(n.unwrap_or(0).min(width as u128) as usize)
}

/// The histogram as BCC prints it: a header naming `unit`, then one row per
/// slot from slot 1 up to the highest non-empty one. Empty when all are zero.
pub fn render(buckets: &[u64], unit: &str) -> String {
    // The highest non-empty slot (slot 0 is not a range).
    let idx_max = buckets.iter().rposition(|&v| v > 0).filter(|&i| i > 0);
    let negative = buckets.first().copied().unwrap_or(0);
    if idx_max.is_none() && negative == 0 {
        return String::new();
    }
    let val_max = buckets.iter().copied().max().unwrap_or(0);
    let wide = idx_max.is_some_and(|i| i > 32);
    // BCC's two layouts: value columns of 10 or 20, the unit after 5 or 15 spaces.
    let (stars_w, low_w, pad, unit_w) = if wide {
        (STARS_MAX / 2, 20, 15, 29)
    } else {
        (STARS_MAX, 10, 5, 19)
    };
    // On a narrow terminal the bars shrink (to 10 at least) so rows do not wrap.
    let row_w = low_w * 2 + 4 + 3 + 8 + 3;
    let stars_w = match super::style::width() {
        Some(w) if w < row_w + stars_w => w.saturating_sub(row_w).max(10),
        _ => stars_w,
    };
    let mut out = format!("{:pad$}{unit:<unit_w$} : count     distribution\n", "");
    if negative > 0 {
        let bar = stars(negative, val_max, stars_w);
        let label_w = low_w * 2 + 4;
        let _ = writeln!(
            out,
            "{:>label_w$} : {negative:<8} |{bar:<stars_w$}|",
            "negative"
        );
    }
    let end = idx_max.map_or(0, |i| i + 1);
    for (s, &val) in buckets.iter().enumerate().take(end).skip(1) {
        let ((low, high), bar) = (bucket_range(s), stars(val, val_max, stars_w));
        let _ = writeln!(
            out,
            "{low:>low_w$} -> {high:<low_w$} : {val:<8} |{bar:<stars_w$}|"
        );
    }
    out
}

/// BCC funclatency's summary line: `avg = 13746 nsecs, total: 6543360 nsecs, count: 476`.
pub fn summary_line(total: u64, count: u64, unit: &str) -> String {
    let avg = total.checked_div(count).unwrap_or(0);
    format!("avg = {avg} {unit}, total: {total} {unit}, count: {count}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn slots_match_bcc_log2l() {
        let log2_bucket = |v| tracer_common::log2_slot(v) as usize;
        assert_eq!(log2_bucket(0), 1);
        assert_eq!(log2_bucket(1), 1);
        assert_eq!(log2_bucket(2), 2);
        assert_eq!(log2_bucket(3), 2);
        assert_eq!(log2_bucket(4), 3);
        assert_eq!(log2_bucket(511), 9);
        assert_eq!(log2_bucket(512), 10);
        assert_eq!(log2_bucket(1 << 32), 33);
        assert_eq!(log2_bucket(u64::MAX), 64);
        for s in 1..=64 {
            let (lo, hi) = bucket_range(s);
            assert_eq!(log2_bucket(hi), s, "slot {s}");
            if s > 1 {
                assert_eq!(log2_bucket(lo), s, "slot {s}");
                assert_eq!(log2_bucket(lo - 1), s - 1, "slot {s}");
            }
        }
    }

    /// The histogram of 12 values in slot 9 and 141 in slot 10, in nsecs.
    pub fn assert_bcc_layout(text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11);
        let want = [
            "     nsecs               : count     distribution",
            "         0 -> 1          : 0        |                                        |",
            "       256 -> 511        : 12       |***                                     |",
            "       512 -> 1023       : 141      |****************************************|",
        ];
        for (i, line) in [0, 1, 9, 10].into_iter().zip(want) {
            assert_eq!(lines[i], line);
        }
    }

    #[test]
    fn bcc_layout() {
        let mut b = vec![0u64; 65];
        b[9] = 12; // 256 -> 511
        b[10] = 141; // 512 -> 1023
        assert_bcc_layout(&render(&b, "nsecs"));
        assert_eq!(
            summary_line(6543360, 476, "nsecs"),
            "avg = 13746 nsecs, total: 6543360 nsecs, count: 476"
        );
    }

    #[test]
    fn wide_layout_and_negatives() {
        let mut b = vec![0u64; 65];
        b[40] = 1;
        b[0] = 2;
        let text = render(&b, "bytes");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "               bytes                         : count     distribution"
        );
        assert!(
            lines[1].trim_start().starts_with("negative : 2"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("|********************|"), "{}", lines[1]);
        assert_eq!(
            lines.last().unwrap(),
            &"        549755813888 -> 1099511627775        : 1        |**********          |"
        );
        assert_eq!(render(&[0; 65], "x"), "");
    }
}
