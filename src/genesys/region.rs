//! The Genesys Cloud regions (`genesys-api.md` §1.1, from the Python SDK's
//! `purecloud_region_hosts.py`), accepted by any of the names Genesys's own
//! tools use: the AWS-style id (`us-east-1`), the SDK enum (`us_east_1`) or
//! the bare domain the tutorials use (`mypurecloud.com`).

/// One region: its SDK id and its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub id: &'static str,
    pub domain: &'static str,
}

/// All 17 regions.
pub const REGIONS: [Region; 17] = [
    Region {
        id: "us_east_1",
        domain: "mypurecloud.com",
    },
    Region {
        id: "eu_west_1",
        domain: "mypurecloud.ie",
    },
    Region {
        id: "ap_southeast_2",
        domain: "mypurecloud.com.au",
    },
    Region {
        id: "ap_northeast_1",
        domain: "mypurecloud.jp",
    },
    Region {
        id: "eu_central_1",
        domain: "mypurecloud.de",
    },
    Region {
        id: "us_west_2",
        domain: "usw2.pure.cloud",
    },
    Region {
        id: "ca_central_1",
        domain: "cac1.pure.cloud",
    },
    Region {
        id: "ap_northeast_2",
        domain: "apne2.pure.cloud",
    },
    Region {
        id: "eu_west_2",
        domain: "euw2.pure.cloud",
    },
    Region {
        id: "ap_south_1",
        domain: "aps1.pure.cloud",
    },
    Region {
        id: "us_east_2",
        domain: "use2.us-gov-pure.cloud",
    },
    Region {
        id: "sa_east_1",
        domain: "sae1.pure.cloud",
    },
    Region {
        id: "me_central_1",
        domain: "mec1.pure.cloud",
    },
    Region {
        id: "ap_northeast_3",
        domain: "apne3.pure.cloud",
    },
    Region {
        id: "eu_central_2",
        domain: "euc2.pure.cloud",
    },
    Region {
        id: "mx_central_1",
        domain: "mxc1.pure.cloud",
    },
    Region {
        id: "ap_southeast_1",
        domain: "apse1.pure.cloud",
    },
];

impl Region {
    /// Finds a region by SDK id, AWS-style id or domain (case-insensitive).
    pub fn parse(name: &str) -> Option<Region> {
        let n = name.trim().to_ascii_lowercase();
        let n = n
            .trim_start_matches("https://")
            .trim_start_matches("api.")
            .trim_end_matches('/');
        let as_id = n.replace('-', "_");
        REGIONS
            .iter()
            .copied()
            .find(|r| r.id == as_id || r.domain == n)
    }

    /// `https://api.{domain}`.
    pub fn api_base(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// Every accepted AWS-style name, for error messages.
    pub fn names() -> String {
        REGIONS
            .iter()
            .map(|r| r.id.replace('_', "-"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each region is found by all three spellings and maps to its api host.
    #[test]
    fn all_spellings_resolve() {
        for r in REGIONS {
            assert_eq!(Region::parse(r.id), Some(r));
            assert_eq!(Region::parse(&r.id.replace('_', "-")), Some(r));
            assert_eq!(Region::parse(r.domain), Some(r));
        }
        assert_eq!(
            Region::parse("eu-west-1").map(|r| r.api_base()),
            Some("https://api.mypurecloud.ie".to_string())
        );
        assert_eq!(Region::parse("mars-north-1"), None);
    }
}
