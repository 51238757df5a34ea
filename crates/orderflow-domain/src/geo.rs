//! Country and region codes of a shipping address.
//!
//! Countries are ISO 3166-1 alpha-2 codes that are officially assigned
//! (the `isocountry` crate's list, so `XX` or `UK` are refused, not only
//! `Britain`); regions are ISO 3166-2 subdivision codes (`GB-ENG`, `US-CA`)
//! checked for shape and for naming the same country. Whether a subdivision
//! code exists is not checked: the list changes every year and a wrong one
//! only affects the region filter of search, never money or stock.

use crate::values::{Text, ValueError};

/// Parses an ISO 3166-1 alpha-2 country code (any case) into upper case.
pub fn country(raw: &str) -> Result<Text, ValueError> {
    let code = raw.trim().to_ascii_uppercase();
    let assigned = code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && isocountry::CountryCode::for_alpha2(&code).is_ok();
    if !assigned {
        return Err(ValueError::Format(
            "an assigned ISO 3166-1 alpha-2 country code such as GB",
        ));
    }
    Text::parse(&code, 2)
}

/// Parses an ISO 3166-2 subdivision code (any case) of `country`: the
/// country code, `-`, then one to three letters or digits.
pub fn region(raw: &str, country: &Text) -> Result<Text, ValueError> {
    let code = region_code(raw)?;
    if !code.as_str().starts_with(country.as_str()) {
        return Err(ValueError::Format(
            "an ISO 3166-2 subdivision code of the address's country, such as GB-ENG or US-CA",
        ));
    }
    Ok(code)
}

/// Parses the shape of an ISO 3166-2 subdivision code (any case) into upper
/// case, whatever its country (for filters, where no address says which).
pub fn region_code(raw: &str) -> Result<Text, ValueError> {
    let code = raw.trim().to_ascii_uppercase();
    let shaped = code.split_once('-').is_some_and(|(prefix, sub)| {
        prefix.len() == 2
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && (1..=3).contains(&sub.len())
            && sub
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if !shaped {
        return Err(ValueError::Format(
            "an ISO 3166-2 subdivision code of the address's country, such as GB-ENG or US-CA",
        ));
    }
    Text::parse(&code, 6)
}

#[cfg(test)]
mod tests {
    use super::{country, region};

    #[test]
    fn countries_must_be_assigned_codes() {
        assert_eq!(country("gb").map(|c| c.to_string()), Ok("GB".into()));
        assert_eq!(country(" DE ").map(|c| c.to_string()), Ok("DE".into()));
        for bad in ["XX", "UK", "Britain", "G", "", "G1"] {
            assert!(country(bad).is_err(), "{bad:?} is not a country");
        }
    }

    #[test]
    fn regions_must_belong_to_the_country() {
        let us = country("US").expect("US");
        assert_eq!(
            region("us-ca", &us).map(|c| c.to_string()),
            Ok("US-CA".into())
        );
        for bad in ["GB-ENG", "CA", "US-", "US-CALI", "US_CA", "US-C A"] {
            assert!(region(bad, &us).is_err(), "{bad:?} is not a region of US");
        }
    }
}
