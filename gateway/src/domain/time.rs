//! Time as the store and the prompts see it: Unix milliseconds
//! ([`now_ms`]) and their calendar fields in UTC ([`Utc`]), without a
//! time-zone database.

/// A moment in UTC, split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1–31.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute.
    pub minute: i64,
    /// Second.
    pub second: i64,
}

impl Utc {
    /// The calendar fields of Unix milliseconds (Howard Hinnant's
    /// days-to-civil algorithm; no time-zone database needed for UTC).
    pub fn from_ms(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }

    /// Unix milliseconds at the start (00:00 UTC) of a `YYYY-MM-DD` date.
    pub fn parse_date(s: &str) -> Option<i64> {
        let mut parts = s.split('-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let d: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        // Days from civil (the inverse of `from_ms`).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let ms = days * 86_400_000;
        (Utc::from_ms(ms).date() == s).then_some(ms)
    }

    /// `2026-11-28`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::fmt::Display for Utc {
    /// `2026-11-28 14:05:09 UTC`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}:{:02} UTC",
            self.date(),
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn utc_calendar_fields_match_known_dates() {
        assert_eq!(Utc::from_ms(0).to_string(), "1970-01-01 00:00:00 UTC");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(
            Utc::from_ms(1_709_251_199_000).to_string(),
            "2024-02-29 23:59:59 UTC"
        );
        assert_eq!(Utc::from_ms(1_795_000_000_000).date(), "2026-11-18");
        let day = Utc::parse_date("2024-02-29").unwrap();
        assert_eq!(Utc::from_ms(day).to_string(), "2024-02-29 00:00:00 UTC");
        assert_eq!(Utc::parse_date("2023-02-29"), None);
        assert_eq!(Utc::parse_date("yesterday"), None);
    }
}
