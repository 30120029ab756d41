//! BTF: one walk of a type section (tracer's own object's, which `bpf/compat.rs`
//! rewrites for old kernels; the running kernel's, /sys/kernel/btf/vmlinux),
//! and struct member offsets from the kernel's.
//!
//! aya-ebpf 0.2 has no CO-RE field relocation, so a program that reads a
//! kernel struct is handed the offsets at load time. aya-obj parses BTF but
//! keeps struct members crate-private, and btf-rs is LGPL (tracer ships as one
//! static binary); what is needed is small.
use anyhow::{bail, Context as _, Result};

pub(crate) const KIND_INT: u32 = 1;
pub(crate) const KIND_PTR: u32 = 2;
pub(crate) const KIND_ARRAY: u32 = 3;
pub(crate) const KIND_STRUCT: u32 = 4;
pub(crate) const KIND_UNION: u32 = 5;
pub(crate) const KIND_ENUM: u32 = 6;
pub(crate) const KIND_TYPEDEF: u32 = 8;
pub(crate) const KIND_VOLATILE: u32 = 9;
pub(crate) const KIND_CONST: u32 = 10;
pub(crate) const KIND_RESTRICT: u32 = 11;
pub(crate) const KIND_FUNC: u32 = 12;
pub(crate) const KIND_FUNC_PROTO: u32 = 13;
pub(crate) const KIND_VAR: u32 = 14;
pub(crate) const KIND_DATASEC: u32 = 15;
pub(crate) const KIND_DECL_TAG: u32 = 17;
pub(crate) const KIND_TYPE_TAG: u32 = 18;
pub(crate) const KIND_ENUM64: u32 = 19;

/// One BTF type: where its `struct btf_type` header starts in the section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Type {
    pub(crate) offset: usize,
    pub(crate) name_off: u32,
    pub(crate) kind: u32,
    pub(crate) vlen: usize,
    /// The kind_flag bit: member offsets carry a bitfield size.
    pub(crate) kflag: bool,
    /// `size` or `type`, by kind.
    pub(crate) type_ref: u32,
}

/// The type section of a `.BTF` section, walked once.
pub(crate) struct Types {
    /// Type id i is at index i - 1 (id 0 is void).
    all: Vec<Type>,
    /// The string section (names are offsets into it).
    strings: Vec<u8>,
}

/// The NUL-terminated string at `off` in a string table ("" if none).
pub(crate) fn str_at(table: &[u8], off: u32) -> &str {
    let s = table.get(off as usize..).unwrap_or_default();
    let s = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
    std::str::from_utf8(s).unwrap_or("")
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let bytes = b.get(at..at + 4).context("BTF section cut short")?;
    Ok(u32::from_le_bytes(bytes.try_into()?))
}

impl Types {
    pub(crate) fn parse(btf: &[u8]) -> Result<Types> {
        if btf.len() < 24 || u16::from_le_bytes([btf[0], btf[1]]) != 0xeb9f {
            bail!("the .BTF section has no BTF header");
        }
        let hdr_len = u32_at(btf, 4)? as usize;
        let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
        let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
        let mut all = Vec::new();
        let mut at = hdr_len + type_off;
        let end = at + type_len;
        while at < end {
            let info = u32_at(btf, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            all.push(Type {
                offset: at,
                kflag: info >> 31 == 1,
                name_off: u32_at(btf, at)?,
                kind,
                vlen,
                type_ref: u32_at(btf, at + 8)?,
            });
            at += 12
                + match kind {
                    KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                    KIND_ARRAY => 12,
                    KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                    KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                    _ => 0,
                };
        }
        let strings = btf
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .context("BTF string section cut short")?
            .to_vec();
        Ok(Types { all, strings })
    }

    pub(crate) fn get(&self, id: u32) -> Result<Type> {
        let i = (id as usize).checked_sub(1).context("BTF type 0 is void")?;
        self.all.get(i).copied().context("BTF type id out of range")
    }

    pub(crate) fn name(&self, off: u32) -> &str {
        str_at(&self.strings, off)
    }

    /// The id of the first type of `kind` named `name`.
    pub(crate) fn find(&self, kind: u32, name: &str) -> Option<u32> {
        let i = self
            .all
            .iter()
            .position(|t| t.kind == kind && self.name(t.name_off) == name)?;
        Some(i as u32 + 1)
    }

    /// Skip typedefs and qualifiers.
    pub(crate) fn resolve(&self, mut id: u32) -> Result<u32> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.type_ref
                }
                _ => return Ok(id),
            }
        }
        bail!("BTF type chain too long")
    }

    /// A struct's or union's members: (name offset, type id, bit offset).
    pub(crate) fn members<'a>(
        &self,
        t: Type,
        btf: &'a [u8],
    ) -> impl Iterator<Item = (u32, u32, u32)> + 'a {
        (0..t.vlen).filter_map(move |i| {
            let at = t.offset + 12 + 12 * i;
            let off = u32_at(btf, at + 8).ok()?;
            // With kind_flag, the top 8 bits are a bitfield's size.
            let bits = if t.kflag { off & 0xff_ffff } else { off };
            Some((u32_at(btf, at).ok()?, u32_at(btf, at + 4).ok()?, bits))
        })
    }

    /// How many places in the type section refer to type `id`.
    pub(crate) fn references(&self, btf: &[u8], id: u32) -> usize {
        let mut n = 0;
        for t in &self.all {
            let vlen = t.vlen;
            let words = |first: usize, stride: usize, count: usize| {
                (0..count).filter_map(move |i| u32_at(btf, t.offset + 12 + first + stride * i).ok())
            };
            n += match t.kind {
                KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_VAR
                | KIND_FUNC_PROTO | KIND_TYPE_TAG | KIND_DECL_TAG | KIND_FUNC => {
                    usize::from(t.type_ref == id)
                        + if t.kind == KIND_FUNC_PROTO {
                            words(4, 8, vlen).filter(|&x| x == id).count()
                        } else {
                            0
                        }
                }
                KIND_ARRAY => words(0, 4, 2).filter(|&x| x == id).count(),
                KIND_STRUCT | KIND_UNION => words(4, 12, vlen).filter(|&x| x == id).count(),
                KIND_DATASEC => words(0, 12, vlen).filter(|&x| x == id).count(),
                _ => 0,
            };
        }
        n
    }
}

/// The running kernel's BTF.
pub struct Btf {
    data: Vec<u8>,
    types: Types,
}

impl Btf {
    pub fn kernel() -> Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).with_context(|| {
            format!("cannot read {path}: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
        })?;
        let types = Types::parse(&data).with_context(|| format!("cannot parse {path}"))?;
        Ok(Btf { data, types })
    }

    /// Bit offset of `member` in struct or union `t`, looking into anonymous
    /// structs and unions.
    fn find_member(&self, t: Type, member: &str, depth: u32) -> Option<u32> {
        for (name, ty, bits) in self.types.members(t, &self.data) {
            if name != 0 {
                if self.types.name(name) == member {
                    return Some(bits);
                }
            } else if depth < 8 {
                let inner = self.types.get(self.types.resolve(ty).ok()?).ok()?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
                    if let Some(o) = self.find_member(inner, member, depth + 1) {
                        return Some(bits + o);
                    }
                }
            }
        }
        None
    }

    /// The size in bytes of struct `strukt`.
    pub fn struct_size(&self, strukt: &str) -> Result<u64> {
        let Some(id) = self.types.find(KIND_STRUCT, strukt) else {
            bail!("the kernel's BTF has no struct {strukt}");
        };
        Ok(u64::from(self.types.get(id)?.type_ref))
    }

    /// Whether the kernel has a function of this name (BTF_KIND_FUNC).
    pub fn has_function(&self, name: &str) -> bool {
        self.types.find(KIND_FUNC, name).is_some()
    }

    /// Byte offset of `strukt.member`: one clear error when the kernel has
    /// no such struct or member.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u64> {
        let Some(id) = self.types.find(KIND_STRUCT, strukt) else {
            bail!("the kernel's BTF has no struct {strukt}");
        };
        let bits = self
            .find_member(self.types.get(id)?, member, 0)
            .with_context(|| format!("the kernel's struct {strukt} has no member {member}"))?;
        Ok(u64::from(bits / 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_member_offsets_of_the_running_kernel() {
        let Ok(btf) = Btf::kernel() else {
            // The test needs /sys/kernel/btf/vmlinux; tracer's supported kernels have it.
            panic!("no kernel BTF here");
        };
        // Offsets that have not moved in years: the first members.
        assert_eq!(btf.member_offset("list_head", "next").unwrap(), 0);
        assert_eq!(btf.member_offset("list_head", "prev").unwrap(), 8);
        let acked = btf.member_offset("tcp_sock", "bytes_sent").unwrap();
        let received = btf.member_offset("tcp_sock", "bytes_received").unwrap();
        assert!(acked > 0 && received > 0 && acked != received);
        // Members inside an anonymous struct inside an anonymous union.
        assert_eq!(btf.member_offset("sock_common", "skc_daddr").unwrap(), 0);
        assert_eq!(
            btf.member_offset("sock_common", "skc_rcv_saddr").unwrap(),
            4
        );
        let e = btf.member_offset("tcp_sock", "no_such_member").unwrap_err();
        assert!(e.to_string().contains("has no member"), "{e}");
        let e = btf.member_offset("no_such_struct", "x").unwrap_err();
        assert!(e.to_string().contains("has no struct"), "{e}");
    }
}
