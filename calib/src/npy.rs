//! `.npy` headers checked before any array is allocated.
//!
//! A 128-byte `.npy` can declare 10¹² elements; a reader that trusts the header allocates
//! terabytes and the process aborts. Here the header is parsed first and the array is read
//! only when the bytes that follow the header are exactly what the header declares, and no
//! more than [`MAX_ARRAY_BYTES`]. `.npz` entries get the same check against the bytes their
//! (possibly compressed) entry really holds, read with the same bound.

use std::io::Read;

/// Largest array a calibration file may hold (4 GiB).
pub const MAX_ARRAY_BYTES: u64 = 4 << 30;
/// Largest `.npy` header accepted (numpy itself writes a few hundred bytes).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// What a `.npy` header declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// Array shape.
    pub(crate) shape: Vec<usize>,
    /// Bytes per element.
    pub(crate) item_size: usize,
    /// Bytes before the data (magic, version, length field, header text).
    pub(crate) data_offset: usize,
}

impl Header {
    /// Bytes the data must have, or why the declared size is unacceptable.
    pub(crate) fn payload_bytes(&self) -> Result<u64, String> {
        let elements = self
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| format!("the header's shape {:?} overflows", self.shape))?;
        let bytes = elements
            .checked_mul(self.item_size as u64)
            .ok_or_else(|| format!("the header's shape {:?} overflows", self.shape))?;
        if bytes > MAX_ARRAY_BYTES {
            return Err(format!(
                "the header declares shape {:?} ({bytes} bytes), above the {MAX_ARRAY_BYTES}-byte limit of one calibration array",
                self.shape
            ));
        }
        Ok(bytes)
    }
}

/// Reads and parses the header at the start of `r`.
pub(crate) fn read_header(r: &mut impl Read) -> Result<Header, String> {
    let mut fixed = [0u8; 8];
    r.read_exact(&mut fixed)
        .map_err(|e| format!("not a .npy file (no header: {e})"))?;
    if &fixed[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (the magic string \\x93NUMPY is missing)".into());
    }
    let (len, prefix) = match fixed[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    if len > MAX_HEADER_BYTES {
        return Err(format!(
            "the .npy header claims {len} bytes (at most {MAX_HEADER_BYTES})"
        ));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let value: py_literal::Value = text
        .trim_end_matches(['\n', ' ', '\0'])
        .parse()
        .map_err(|e| format!("unreadable .npy header {text:?}: {e}"))?;
    let py_literal::Value::Dict(entries) = value else {
        return Err(format!("the .npy header {text:?} is not a dictionary"));
    };
    let get = |key: &str| {
        entries.iter().find_map(|(k, v)| match k {
            py_literal::Value::String(s) if s == key => Some(v),
            _ => None,
        })
    };
    let descr = match get("descr") {
        Some(py_literal::Value::String(s)) => s.clone(),
        _ => return Err(format!("the .npy header {text:?} has no simple 'descr'")),
    };
    let item_size: usize = descr
        .trim_start_matches(['<', '>', '|', '='])
        .get(1..)
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0 && n <= 16)
        .ok_or_else(|| format!("unsupported .npy element type '{descr}'"))?;
    let shape = match get("shape") {
        Some(py_literal::Value::Tuple(dims)) | Some(py_literal::Value::List(dims)) => dims
            .iter()
            .map(|d| match d {
                py_literal::Value::Integer(n) => usize::try_from(n.clone())
                    .map_err(|_| format!("the .npy shape has an invalid extent {n}")),
                other => Err(format!("the .npy shape has a non-integer extent {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(format!("the .npy header {text:?} has no 'shape' tuple")),
    };
    Ok(Header {
        shape,
        item_size,
        data_offset: prefix + len,
    })
}

/// Reads a whole `.npy` (from a file of `total` bytes, or an archive entry) after checking
/// that its data is exactly what the header declares; returns the bytes for the array reader.
///
/// With `input`, the header's shape must be one the model input can take (its rank and every
/// fixed extent): a compressed archive entry declaring a huge array for a small input is
/// refused before anything is inflated.
pub(crate) fn read_checked(
    mut r: impl Read,
    total: Option<u64>,
    input: Option<&crate::model::TensorInfo>,
) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    let header = read_header(
        &mut (&mut r)
            .take(MAX_HEADER_BYTES as u64 + 12)
            .inspect(&mut head),
    )?;
    let payload = header.payload_bytes()?;
    if let Some(input) = input.filter(|i| !i.dims.is_empty()) {
        let takes = format!("input '{}' takes {}", input.name, input.shape_string());
        let refuse = |why: String| {
            Err(format!(
                "the header declares shape {:?}: {why} ({takes}); nothing past the header was read",
                header.shape
            ))
        };
        if header.shape.len() != input.dims.len() {
            return refuse(format!(
                "rank {} but the model's input has rank {}",
                header.shape.len(),
                input.dims.len()
            ));
        }
        for (axis, (&n, d)) in header.shape.iter().zip(&input.dims).enumerate() {
            if let Some(f) = d.fixed().filter(|&f| u64::try_from(f) != Ok(n as u64)) {
                return refuse(format!(
                    "dimension {axis} is {n} but the model fixes it to {f}"
                ));
            }
        }
    }
    if let Some(total) = total {
        let have = total.saturating_sub(header.data_offset as u64);
        if have != payload {
            return Err(format!(
                "the header declares shape {:?} ({payload} bytes of data) but the file holds {have}",
                header.shape
            ));
        }
    }
    // Never read (or allocate) more than declared; one byte more tells a longer stream.
    let mut bytes = head;
    bytes.reserve(payload.min(1 << 24) as usize);
    let read = (&mut r)
        .take(payload + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())? as u64;
    if read != payload {
        return Err(format!(
            "the header declares shape {:?} ({payload} bytes of data) but {} follow",
            header.shape,
            if read > payload {
                "more".to_string()
            } else {
                read.to_string()
            }
        ));
    }
    Ok(bytes)
}

/// A reader that copies what it reads into a buffer (so the header bytes can be replayed).
trait Inspect: Read + Sized {
    fn inspect(self, sink: &mut Vec<u8>) -> InspectReader<'_, Self> {
        InspectReader { inner: self, sink }
    }
}
impl<R: Read> Inspect for R {}

struct InspectReader<'a, R> {
    inner: R,
    sink: &'a mut Vec<u8>,
}

impl<R: Read> Read for InspectReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn a_header_declaring_a_terabyte_is_refused_before_allocating() {
        let f = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
            &[0; 8],
        );
        let e = read_checked(&f[..], Some(f.len() as u64), None).unwrap_err();
        assert!(
            e.contains("above the") && e.contains("1000000000000"),
            "{e}"
        );
        let e = read_checked(&f[..], None, None).unwrap_err();
        assert!(e.contains("limit"), "{e}");
    }

    #[test]
    fn payload_must_match_the_header_exactly() {
        let f = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[0; 8],
        );
        let e = read_checked(&f[..], Some(f.len() as u64), None).unwrap_err();
        assert!(
            e.contains("12 bytes of data") && e.contains("holds 8"),
            "{e}"
        );
        let e = read_checked(&f[..], None, None).unwrap_err();
        assert!(e.contains("but 8 follow"), "{e}");
        let ok = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        assert_eq!(
            read_checked(&ok[..], Some(ok.len() as u64), None).unwrap(),
            ok
        );
        let overflow = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
            &[],
        );
        assert!(
            read_checked(&overflow[..], None, None)
                .unwrap_err()
                .contains("overflows")
        );
    }
}
