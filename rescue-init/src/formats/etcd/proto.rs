//! A tiny protobuf encoder for the few gogo-generated messages a restore writes. Hand-encoded
//! because gogo always emits non-nullable zero fields and never packs repeated fields, which
//! generic proto3 encoders do differently.

/// Appends a base-128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint field (always, even when zero).
pub fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field) << 3);
    varint(out, v);
}

/// Appends a length-delimited field.
pub fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// raftpb.ConfState{voters, auto_leave=false}.
pub fn conf_state(voters: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in voters {
        field_varint(&mut out, 1, *v);
    }
    field_varint(&mut out, 5, 0);
    out
}

/// raftpb.ConfChange{ID=0, Type=AddNode, NodeID, Context}.
pub fn conf_change_add(node_id: u64, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field_varint(&mut out, 1, 0);
    field_varint(&mut out, 2, 0);
    field_varint(&mut out, 3, node_id);
    field_bytes(&mut out, 4, context);
    out
}

/// raftpb.Entry{Type, Term, Index, Data}.
pub fn entry(kind: u64, term: u64, index: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field_varint(&mut out, 1, kind);
    field_varint(&mut out, 2, term);
    field_varint(&mut out, 3, index);
    field_bytes(&mut out, 4, data);
    out
}

/// raftpb.HardState{term, vote, commit}.
pub fn hard_state(term: u64, vote: u64, commit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    field_varint(&mut out, 1, term);
    field_varint(&mut out, 2, vote);
    field_varint(&mut out, 3, commit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        assert_eq!(hard_state(1, 2, 3), [8, 1, 16, 2, 24, 3]);
        assert_eq!(conf_state(&[]), [0x28, 0]);
    }
}
