//! Calendar dates of Unix times, for the two places that print one (the
//! CLI's JSON timestamps and Workbench's model dates) without a date crate.

/// The UTC `(year, month 1-12, day 1-31)` and the seconds into that day of
/// `secs` since the Unix epoch (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil(secs: i64) -> (i64, u32, u32, u32) {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32, rest as u32)
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn dates_around_leap_days_and_the_epoch() {
        assert_eq!(civil(0), (1970, 1, 1, 0));
        assert_eq!(civil(-1), (1969, 12, 31, 86_399));
        // 2024-02-29T12:00:00Z and the day after.
        assert_eq!(civil(1_709_208_000), (2024, 2, 29, 43_200));
        assert_eq!(civil(1_709_208_000 + 86_400), (2024, 3, 1, 43_200));
        // 2000-12-31T23:59:59Z (a leap year divisible by 400).
        assert_eq!(civil(978_307_199), (2000, 12, 31, 86_399));
    }
}
