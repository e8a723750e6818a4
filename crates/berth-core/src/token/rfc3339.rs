//! RFC 3339 date-times (RFC 3339 section 5.6), as the token response's `issued_at`.
//!
//! ```text
//! date-time := YYYY '-' MM '-' DD ('T'|'t') hh ':' mm ':' ss ('.' digit+)? ('Z'|'z'|('+'|'-') hh ':' mm)
//! ```
//!
//! Hand-written on the proleptic Gregorian calendar (Howard Hinnant's
//! days-from-civil arithmetic), so that `berth-core` needs no date crate.

use crate::error::{ParseError, ParseErrorKind};

/// Formats Unix seconds as RFC 3339 UTC (`2024-02-05T04:59:31Z`). Times before
/// year 0 or after year 9999 are clamped, since RFC 3339 has four-digit years.
pub fn format_rfc3339(unix_secs: i64) -> String {
    let secs = unix_secs.clamp(MIN_RFC3339, MAX_RFC3339);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `0000-01-01T00:00:00Z` and `9999-12-31T23:59:59Z` in Unix seconds.
const MIN_RFC3339: i64 = -62_167_219_200;
const MAX_RFC3339: i64 = 253_402_300_799;

/// Parses an RFC 3339 date-time (section 5.6) into Unix seconds:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`. `T` and `Z` may be
/// lower-case; a fraction is truncated; a leap second (`:60`) counts as `:59`.
pub fn parse_rfc3339(s: &str) -> Result<i64, ParseError> {
    let b = s.as_bytes();
    let err =
        |at: usize, reason: &str| ParseError::new(ParseErrorKind::TokenResponse, s, at, reason);
    const SHAPE: &str = "expected an RFC 3339 time such as `2024-02-05T04:59:31Z`";
    let num = |at: usize, len: usize| -> Result<i64, ParseError> {
        (at..at + len).try_fold(0, |n, i| match b.get(i) {
            Some(c) if c.is_ascii_digit() => Ok(n * 10 + i64::from(c - b'0')),
            _ => Err(err(i, SHAPE)),
        })
    };
    let lit = |at: usize, allowed: &[u8]| match b.get(at) {
        Some(c) if allowed.contains(c) => Ok(()),
        _ => Err(err(at, SHAPE)),
    };
    let year = num(0, 4)?;
    lit(4, b"-")?;
    let month = num(5, 2)?;
    lit(7, b"-")?;
    let day = num(8, 2)?;
    lit(10, b"Tt")?;
    let hour = num(11, 2)?;
    lit(13, b":")?;
    let minute = num(14, 2)?;
    lit(16, b":")?;
    let second = num(17, 2)?;
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let digits = b.iter().skip(at).take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err(at, "expected digits after the `.` of the seconds"));
        }
        at += digits;
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(at + 1, 2)?;
            lit(at + 3, b":")?;
            let om = num(at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err(err(at + 1, "the time zone offset must be at most +23:59"));
            }
            at += 6;
            let sign = if *sign == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => {
            return Err(err(
                at,
                "expected a time zone: `Z` or an offset such as `+01:00`",
            ));
        }
    };
    if at != b.len() {
        return Err(err(at, "unexpected characters after the time zone"));
    }
    let checks = [
        (5, (1..=12).contains(&month), "the month must be 01 to 12"),
        (
            8,
            day >= 1 && day <= days_in_month(year, month),
            "no such day in that month",
        ),
        (11, hour <= 23, "the hour must be 00 to 23"),
        (14, minute <= 59, "the minute must be 00 to 59"),
        (17, second <= 60, "the second must be 00 to 60"),
    ];
    if let Some((at, _, reason)) = checks.into_iter().find(|(_, ok, _)| !ok) {
        return Err(err(at, reason));
    }
    let second = second.min(59);
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_707_109_171), "2024-02-05T04:59:31Z");
        assert_eq!(format_rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn parses_zones_fractions_and_case() {
        let cases = [
            ("2024-02-05T04:47:32.123456789Z", 1_707_108_452),
            ("2024-02-05T04:47:32Z", 1_707_108_452),
            ("2024-02-05t04:47:32.5z", 1_707_108_452),
            ("2024-02-05T05:47:32+01:00", 1_707_108_452),
            ("2024-02-04T23:17:32.0-05:30", 1_707_108_452),
            ("2024-02-05T04:47:32-00:00", 1_707_108_452),
            ("2016-12-31T23:59:60Z", 1_483_228_799),
            ("2024-02-29T00:00:00Z", 1_709_164_800),
        ];
        for (s, unix) in cases {
            assert_eq!(parse_rfc3339(s), Ok(unix), "{s}");
        }
    }

    #[test]
    fn invalid_times_say_where() {
        let cases = [
            ("2024-02-05", 10, "expected an RFC 3339 time"),
            ("2024-02-05 04:47:32Z", 10, "expected an RFC 3339 time"),
            ("2024-02-05T04:47:32", 19, "expected a time zone"),
            ("2024-02-05T04:47:32.Z", 20, "expected digits"),
            ("2024-02-05T04:47:32Zjunk", 20, "unexpected characters"),
            ("2024-13-05T04:47:32Z", 5, "month"),
            ("2023-02-29T04:47:32Z", 8, "no such day"),
            ("2024-04-31T04:47:32Z", 8, "no such day"),
            ("2024-02-05T24:00:00Z", 11, "hour"),
            ("2024-02-05T04:60:00Z", 14, "minute"),
            ("2024-02-05T04:47:61Z", 17, "second"),
            ("2024-02-05T04:47:32+24:00", 20, "offset"),
            ("2024-02-05T04:47:32+0100", 22, "expected an RFC 3339 time"),
            ("24-02-05T04:47:32Z", 2, "expected an RFC 3339 time"),
            ("", 0, "expected an RFC 3339 time"),
        ];
        for (s, position, reason) in cases {
            let e = parse_rfc3339(s).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::TokenResponse);
            assert_eq!(e.position(), position, "{s}: {e}");
            assert!(e.reason().contains(reason), "{s}: {e}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(t in MIN_RFC3339..=MAX_RFC3339) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(t)), Ok(t));
        }

        #[test]
        fn printing_is_canonical(s in "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{1,12})?([Zz]|[+-][0-2][0-9]:[0-6][0-9])") {
            if let Ok(t) = parse_rfc3339(&s) {
                let printed = format_rfc3339(t);
                if (MIN_RFC3339..=MAX_RFC3339).contains(&t) {
                    prop_assert_eq!(format_rfc3339(parse_rfc3339(&printed).unwrap()), printed);
                }
            }
        }

        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = parse_rfc3339(&s);
        }
    }
}
