//! The C ABI version. Bump it on any incompatible change of an exported function or struct.

/// Must match `HAKMEM_ABI_VERSION` in include/hakmem.h.
pub const ABI_VERSION: u32 = 1;
