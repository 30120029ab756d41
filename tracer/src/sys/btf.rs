//! Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).
//!
//! aya-ebpf 0.2 has no CO-RE field relocation, so a program that reads a
//! kernel struct is handed the offsets at load time. aya-obj parses BTF but
//! keeps struct members crate-private, and btf-rs is LGPL (tracer ships as one
//! static binary); what is needed here is small: walk the type section once,
//! find a struct by name, and a member by name, through anonymous unions and
//! structs.
use std::collections::HashMap;

use anyhow::{bail, Context as _, Result};

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    name: u32,
    kind: u32,
    /// The referred type (typedef, const, volatile, ...).
    ty: u32,
    members: Vec<Member>,
}

/// The parsed type section of one BTF blob.
pub struct Btf {
    strings: Vec<u8>,
    /// By type id; id 0 is `void`.
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let s = b.get(at..at + 4).context("BTF is cut short")?;
    Ok(u32::from_le_bytes(s.try_into().unwrap()))
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).with_context(|| {
            format!("cannot read {path}: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
        })?;
        Btf::parse(&data).with_context(|| format!("cannot parse {path}"))
    }

    pub fn parse(b: &[u8]) -> Result<Btf> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != 0xeb9f {
            bail!("not little-endian BTF");
        }
        let hdr = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let strings = b
            .get(hdr + str_off..hdr + str_off + str_len)
            .context("BTF string section out of bounds")?
            .to_vec();
        let sec = b
            .get(hdr + type_off..hdr + type_off + type_len)
            .context("BTF type section out of bounds")?;
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            ty: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at + 12 <= sec.len() {
            let (name, info, ty) = (u32_at(sec, at)?, u32_at(sec, at + 4)?, u32_at(sec, at + 8)?);
            at += 12;
            let (kind, vlen, kflag) = ((info >> 24) & 0x1f, info & 0xffff, info >> 31);
            let mut members = Vec::new();
            at += match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen as usize {
                        let m = at + 12 * i;
                        let off = u32_at(sec, m + 8)?;
                        members.push(Member {
                            name: u32_at(sec, m)?,
                            ty: u32_at(sec, m + 4)?,
                            bit_offset: if kflag == 1 { off & 0xff_ffff } else { off },
                        });
                    }
                    12 * vlen as usize
                }
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
                _ => 0,
            };
            types.push(Type {
                name,
                kind,
                ty,
                members,
            });
        }
        let mut btf = Btf {
            strings,
            types,
            structs: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name != 0 {
                let name = btf.name(t.name).to_string();
                btf.structs.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    /// Through typedefs, const, volatile and type tags.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_TYPE_TAG => id = t.ty,
                _ => return Some(t),
            }
        }
        None
    }

    /// Bit offset of `member` in `t`, looking into anonymous structs and unions.
    fn find(&self, t: &Type, member: &str, depth: u32) -> Option<u32> {
        for m in &t.members {
            if m.name != 0 {
                if self.name(m.name) == member {
                    return Some(m.bit_offset);
                }
            } else if depth < 8 {
                let inner = self.resolve(m.ty)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
                    if let Some(o) = self.find(inner, member, depth + 1) {
                        return Some(m.bit_offset + o);
                    }
                }
            }
        }
        None
    }

    /// Byte offset of `strukt.member`: one clear error when the kernel has
    /// no such struct or member.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u64> {
        let id = *self
            .structs
            .get(strukt)
            .with_context(|| format!("the kernel's BTF has no struct {strukt}"))?;
        let t = &self.types[id as usize];
        let bits = self
            .find(t, member, 0)
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
