//! Kubernetes resource quantities: parsing and the canonical form the API server writes
//! (`2000m` → `2`, `1024Mi` → `1Gi`, `1000` → `1k`), as Istio's golden files show them.

use thiserror::Error;

/// A quantity that failed to parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("quantity {0:?} is not a valid Kubernetes quantity (e.g. 100m, 1.5, 128Mi, 1Gi)")]
pub struct QuantityError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// A parsed quantity: `mantissa * 10^exp10` with the format it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    format: Format,
}

const MAX_MANTISSA_DIGITS: usize = 30;

impl Quantity {
    /// Parses a quantity string such as `100m`, `1.5Gi`, `2e3`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(s.to_string());
        let t = s.trim();
        if t.is_empty() || t.len() > 64 {
            return Err(err());
        }
        let (negative, rest) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_MANTISSA_DIGITS {
            return Err(err());
        }
        let mut mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err())?
        };
        let mut exp10 = -(frac_part.len() as i32);
        let format = match suffix {
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power = match suffix {
                    "Ki" => 1,
                    "Mi" => 2,
                    "Gi" => 3,
                    "Ti" => 4,
                    "Pi" => 5,
                    _ => 6,
                };
                // Multiply by 1024^power; scale into an integer count when exact.
                mantissa = mantissa.checked_mul(1024u128.pow(power)).ok_or_else(err)?;
                Format::BinarySi
            }
            "n" | "u" | "m" | "" | "k" | "M" | "G" | "T" | "P" | "E" => {
                exp10 += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "" => 0,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
                Format::DecimalSi
            }
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..].parse().map_err(|_| err())?;
                if !(-100..=100).contains(&e) {
                    return Err(err());
                }
                exp10 += e;
                Format::DecimalExponent
            }
            _ => return Err(err()),
        };
        // Normalise: strip trailing zeros into the exponent.
        while mantissa != 0 && mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exp10 += 1;
        }
        if mantissa == 0 {
            exp10 = 0;
        }
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            format,
        })
    }

    /// The canonical string, as Kubernetes serialises the quantity.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        let sign = if self.negative { "-" } else { "" };
        if self.format == Format::BinarySi && self.exp10 >= 0 {
            if let Some(v) = 10u128
                .checked_pow(self.exp10 as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
            {
                let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
                let mut value = v;
                let mut idx = 0;
                while idx + 1 < suffixes.len() && value % 1024 == 0 && value >= 1024 {
                    value /= 1024;
                    idx += 1;
                }
                return format!("{sign}{value}{}", suffixes[idx]);
            }
        }
        // Decimal: choose the largest exponent that is a multiple of 3 and <= exp10.
        let (mut mantissa, mut exp) = (self.mantissa, self.exp10);
        if exp < -9 {
            // Below nano precision: round up to 1n, as Kubernetes does.
            let shift = (-9 - exp) as u32;
            let div = 10u128.checked_pow(shift).unwrap_or(u128::MAX);
            mantissa = mantissa.div_ceil(div).max(1);
            exp = -9;
        }
        let mut target = exp.div_euclid(3) * 3;
        if self.format == Format::DecimalSi {
            target = target.min(18);
        }
        let scale = (exp - target) as u32;
        let scaled = 10u128
            .checked_pow(scale)
            .and_then(|p| mantissa.checked_mul(p))
            .unwrap_or(mantissa);
        if self.format == Format::DecimalExponent {
            return if target == 0 {
                format!("{sign}{scaled}")
            } else {
                format!("{sign}{scaled}e{target}")
            };
        }
        let suffix = match target {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        format!("{sign}{scaled}{suffix}")
    }
}

/// Canonicalises a quantity string; returns an error for an invalid one.
pub fn canonicalize(s: &str) -> Result<String, QuantityError> {
    Quantity::parse(s).map(|q| q.canonical())
}

/// Canonicalises every quantity in a `resources` block (`requests`/`limits` maps) in place.
/// Numbers become strings; invalid strings are left as they are.
pub fn canonicalize_resources(resources: &mut serde_json::Value) {
    for key in ["requests", "limits", "claims_do_not_touch"] {
        if let Some(map) = resources.get_mut(key).and_then(|v| v.as_object_mut()) {
            for v in map.values_mut() {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if let Ok(c) = canonicalize(&text) {
                    *v = serde_json::Value::String(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("2000m", "2"),
            ("4000m", "4"),
            ("1000m", "1"),
            ("100m", "100m"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("2Gi", "2Gi"),
            ("128Mi", "128Mi"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("1.5Gi", "1536Mi"),
            ("0", "0"),
            ("0m", "0"),
            ("1e3", "1e3"),
            ("12e2", "1200"),
            ("0.0000000001", "1n"),
            ("3", "3"),
            ("0.5Ki", "512"),
            ("-100m", "-100m"),
        ];
        for (input, want) in cases {
            assert_eq!(canonicalize(input).unwrap(), want, "input {input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "abc", "1.2.3", "10X", "Mi", "1e", "1e999", ".", "--1", "1 Gi",
        ] {
            assert!(canonicalize(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
