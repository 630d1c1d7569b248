//! `google.protobuf.Duration` as Istio's legacy jsonpb decodes it: Go's `time.ParseDuration` syntax.

use std::fmt;

use serde_json::Value;

use super::decode::{kind_of, Decode, Decoder, Path};

/// A duration in nanoseconds (Go's `time.Duration` range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Duration {
    /// Nanoseconds; may be negative.
    pub nanos: i64,
}

impl Duration {
    /// One millisecond in nanoseconds.
    pub const MILLI: i64 = 1_000_000;
    /// One second in nanoseconds.
    pub const SECOND: i64 = 1_000_000_000;

    /// A duration of `nanos` nanoseconds.
    pub fn from_nanos(nanos: i64) -> Self {
        Duration { nanos }
    }

    /// Converts to `std::time::Duration` (negative values become zero).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.nanos).unwrap_or(0))
    }

    /// Parses Go's duration syntax (`300ms`, `1.5h`, `1m30s`, `-2s`, `0`).
    pub fn parse_go(s: &str) -> Result<Self, String> {
        let bad = || format!("time: invalid duration {s:?}");
        let mut rest = s;
        let mut neg = false;
        if let Some(r) = rest.strip_prefix('-') {
            neg = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('+') {
            rest = r;
        }
        if rest == "0" {
            return Ok(Duration { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (int_part, after) = rest.split_at(int_end);
            let (frac_part, after) = match after.strip_prefix('.') {
                Some(a) => {
                    let e = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                    a.split_at(e)
                }
                None => ("", after),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(bad());
            }
            let unit_end = after
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let scale: u128 = match unit {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(format!("time: missing unit in duration {s:?}")),
                u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
            };
            let int_val: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse::<u128>().map_err(|_| bad())?
            };
            let mut v = int_val.checked_mul(scale).ok_or_else(bad)?;
            if !frac_part.is_empty() {
                // Go keeps the fraction exactly up to the unit's resolution (truncating).
                let mut frac_scale = scale;
                for c in frac_part.chars() {
                    frac_scale /= 10;
                    if frac_scale == 0 {
                        break;
                    }
                    let digit = u128::from(c.to_digit(10).unwrap_or(0));
                    v += digit * frac_scale;
                }
            }
            total = total.checked_add(v).ok_or_else(bad)?;
            if total > i64::MAX as u128 {
                return Err(bad());
            }
            rest = after;
        }
        let n = i64::try_from(total).map_err(|_| bad())?;
        Ok(Duration {
            nanos: if neg { -n } else { n },
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n % Self::SECOND == 0 {
            write!(f, "{}s", n / Self::SECOND)
        } else if n % Self::MILLI == 0 {
            write!(f, "{}ms", n / Self::MILLI)
        } else {
            write!(f, "{}ns", n)
        }
    }
}

impl Decode for Duration {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        match v {
            Value::String(s) => match Duration::parse_go(s) {
                Ok(x) => Some(x),
                Err(e) => {
                    d.err(p, format!("bad Duration: {e}"));
                    None
                }
            },
            _ => {
                d.err(
                    p,
                    format!(
                        "bad Duration: expected a string such as \"1.5s\", got {}",
                        kind_of(v)
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("1.5s", 1_500_000_000),
            ("300ms", 300_000_000),
            ("1m30s", 90_000_000_000),
            ("1h", 3_600_000_000_000),
            ("0", 0),
            ("0s", 0),
            ("0.5s", 500_000_000),
            ("-2s", -2_000_000_000),
            ("1us", 1000),
            ("1.s", 1_000_000_000),
            (".5s", 500_000_000),
        ];
        for (s, n) in ok {
            assert_eq!(Duration::parse_go(s), Ok(Duration::from_nanos(n)), "{s}");
        }
        for s in [
            "",
            "abc",
            "1",
            "1x",
            "s",
            ".s",
            "-",
            "1.5",
            "99999999999999999h",
        ] {
            assert!(Duration::parse_go(s).is_err(), "{s}");
        }
    }
}
