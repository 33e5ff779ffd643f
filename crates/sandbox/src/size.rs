//! Human sizes: `512M`, `64K`, `1G`, `1048576` (binary multiples: K = 1024).

/// Error for a size that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size `{0}`: expected a whole number of bytes with an optional K, M or G suffix (binary: 1K = 1024), for example 512M")]
pub struct SizeError(pub String);

/// Parses `N`, `NK`, `NM`, `NG` (optionally followed by `B` or `iB`, case-insensitive) into
/// bytes. K/M/G are binary multiples (1024), as in `docker run --memory`.
///
/// # Errors
///
/// [`SizeError`] for an empty, negative, fractional or overflowing value or an unknown suffix.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError(text.to_string());
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(err());
    }
    let number: u64 = t[..digits_end].parse().map_err(|_| err())?;
    let suffix = t[digits_end..].to_ascii_lowercase();
    let shift = match suffix.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(err)
}

/// Formats bytes with the largest exact binary suffix (`512M`, `1536K`, `7`).
pub fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size(" 3k "), Ok(3 << 10));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "M",
            "-1",
            "1.5G",
            "12X",
            "1 G",
            "99999999999999999999",
            "18446744073709551615K",
        ] {
            assert_eq!(parse_size(bad), Err(SizeError(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for n in [0, 7, 1024, 1536 << 10, 512 << 20, 3 << 30] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
        assert_eq!(format_size(512 << 20), "512M");
    }
}
