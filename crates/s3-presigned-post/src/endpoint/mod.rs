//! Regions and the URL a browser posts the form to.
//!
//! These are the rules of the S3 endpoint rule set as the seed applies them to a
//! `PutObject` without ARNs: AWS partitions and their DNS suffixes, virtual-hosted or
//! path-style addressing, FIPS, dual-stack, Transfer Acceleration and custom endpoints.
//! They were read off the seed by running it; the differential test holds them to it.

use std::fmt;

use url::{Host, Url};

use super::{BucketName, PresignError};

/// An AWS region name such as `us-east-1`, or the region a custom store expects.
///
/// Accepted: one DNS label of lower-case letters, digits and inner hyphens, up to 63
/// characters, because it becomes part of a host name and of the credential scope.
/// Refused, stricter than the seed: upper case (the seed signs `US-EAST-1` but addresses
/// `us-east-1`, a signature S3 rejects) and the pseudo-regions `aws-global`, `*-global`,
/// `fips-*` and `*-fips`, which are not signing regions; use [`Addressing::fips`] for FIPS.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Region {
    name: String,
    /// Worked out once: every ticket's URL needs it.
    partition: Partition,
}

impl Region {
    /// Checks `name` against the rules above.
    pub fn new(name: impl Into<String>) -> Result<Self, PresignError> {
        let name = name.into();
        let reason = if name.is_empty() || name.len() > 63 {
            Some("a region has 1 to 63 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || name.starts_with('-')
            || name.ends_with('-')
        {
            Some("a region is lower-case letters, digits and inner hyphens")
        } else if name.ends_with("-global") || name.starts_with("fips-") || name.ends_with("-fips")
        {
            Some("pseudo-regions cannot sign; name the real region (and set FIPS separately)")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PresignError::InvalidRegion {
                region: name,
                reason,
            }),
            None => Ok(Self {
                partition: partition_of(&name),
                name,
            }),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The AWS partition the region belongs to; unknown names fall in `aws`, as in the
    /// seed, so that new regions work before this table knows them.
    pub fn partition(&self) -> Partition {
        self.partition
    }
}

/// The partition by the region patterns of the AWS partitions table.
fn partition_of(region: &str) -> Partition {
    let parts: Vec<&str> = region.split('-').collect();
    let word = |s: &str| !s.is_empty();
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        ["cn", w, n] if word(w) && number(n) => Partition::AwsCn,
        [p, w, n]
            if ["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"].contains(p)
                && word(w)
                && number(n) =>
        {
            Partition::Aws
        }
        ["eusc", "de", w, n] if word(w) && number(n) => Partition::AwsEusc,
        ["us", "iso", w, n] if word(w) && number(n) => Partition::AwsIso,
        ["us", "isob", w, n] if word(w) && number(n) => Partition::AwsIsoB,
        ["eu", "isoe", w, n] if word(w) && number(n) => Partition::AwsIsoE,
        ["us", "isof", w, n] if word(w) && number(n) => Partition::AwsIsoF,
        ["us", "gov", w, n] if word(w) && number(n) => Partition::AwsUsGov,
        _ => Partition::Aws,
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.name, f)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An AWS partition: a separate copy of AWS with its own DNS suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Partition {
    /// Commercial regions (`amazonaws.com`).
    Aws,
    /// China (`amazonaws.com.cn`).
    AwsCn,
    /// European Sovereign Cloud (`amazonaws.eu`).
    AwsEusc,
    /// US ISO East/West (`c2s.ic.gov`).
    AwsIso,
    /// US ISOB (`sc2s.sgov.gov`).
    AwsIsoB,
    /// EU ISOE (`cloud.adc-e.uk`).
    AwsIsoE,
    /// US ISOF (`csp.hci.ic.gov`).
    AwsIsoF,
    /// AWS GovCloud (US) (`amazonaws.com`).
    AwsUsGov,
}

impl Partition {
    /// The DNS suffix of the partition's endpoints.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
            Self::AwsCn => "amazonaws.com.cn",
            Self::AwsEusc => "amazonaws.eu",
            Self::AwsIso => "c2s.ic.gov",
            Self::AwsIsoB => "sc2s.sgov.gov",
            Self::AwsIsoE => "cloud.adc-e.uk",
            Self::AwsIsoF => "csp.hci.ic.gov",
        }
    }
}

/// A custom endpoint: MinIO, LocalStack, Garage or any S3-compatible store.
///
/// An `http` or `https` URL with a host, an optional port and an optional base path
/// (`http://127.0.0.1:9000/s3`), which is kept. Refused, stricter than the seed: a query,
/// a fragment or user info, which the seed drops silently.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Self, PresignError> {
        let invalid = |reason| PresignError::InvalidEndpoint {
            endpoint: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|_| invalid("not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if parsed.host().is_none() {
            return Err(invalid("the URL has no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a query or fragment would be dropped"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("user info is not allowed"));
        }
        Ok(Self(parsed))
    }

    /// The URL, normalised (lower-case host, default port dropped).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn is_ip(&self) -> bool {
        matches!(self.0.host(), Some(Host::Ipv4(_) | Host::Ipv6(_)))
    }

    /// `host[:port]`, with IPv6 hosts in brackets and default ports left out.
    fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

/// How the store is addressed: what an S3 client's endpoint settings are to the seed.
///
/// The default is AWS, virtual-hosted style (`https://bucket.s3.region.amazonaws.com/`,
/// regional also in us-east-1), falling back to path style for bucket names that are not
/// DNS compatible, as S3 itself requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    endpoint: Option<Endpoint>,
    force_path_style: bool,
    dual_stack: bool,
    accelerate: bool,
    fips: bool,
}

impl Addressing {
    /// AWS endpoints, virtual-hosted style where the bucket name allows it.
    pub fn aws() -> Self {
        Self::default()
    }

    /// A custom endpoint. Its buckets are virtual-hosted like AWS's unless the host is an
    /// IP address or path style is forced, which MinIO and most local stores want.
    pub fn custom(endpoint: Endpoint) -> Self {
        Self {
            endpoint: Some(endpoint),
            ..Self::default()
        }
    }

    /// Always address the bucket in the path: `https://host/bucket`.
    pub fn force_path_style(mut self, on: bool) -> Self {
        self.force_path_style = on;
        self
    }

    /// IPv4 + IPv6 endpoints (`s3.dualstack.<region>`). AWS only.
    pub fn dual_stack(mut self, on: bool) -> Self {
        self.dual_stack = on;
        self
    }

    /// S3 Transfer Acceleration (`bucket.s3-accelerate`). AWS only, not with FIPS, not in
    /// China, and only for DNS-compatible bucket names without dots.
    pub fn accelerate(mut self, on: bool) -> Self {
        self.accelerate = on;
        self
    }

    /// FIPS 140 endpoints (`s3-fips.<region>`). AWS only, not in China.
    pub fn fips(mut self, on: bool) -> Self {
        self.fips = on;
        self
    }

    /// The custom endpoint, if any.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// Refuses combinations that no bucket could use, so a misconfiguration shows at
    /// start-up rather than on the first ticket.
    pub fn check(&self, region: &Region) -> Result<(), PresignError> {
        if self.endpoint.is_some() {
            if self.dual_stack {
                return Err(PresignError::UnsupportedAddressing(
                    "dual-stack cannot be combined with a custom endpoint",
                ));
            }
            if self.fips {
                return Err(PresignError::UnsupportedAddressing(
                    "FIPS cannot be combined with a custom endpoint",
                ));
            }
            if self.accelerate {
                return Err(PresignError::UnsupportedAddressing(
                    "Transfer Acceleration cannot be combined with a custom endpoint",
                ));
            }
            return Ok(());
        }
        if self.accelerate && self.fips {
            return Err(PresignError::UnsupportedAddressing(
                "Transfer Acceleration cannot be combined with FIPS",
            ));
        }
        if self.accelerate && self.force_path_style {
            return Err(PresignError::UnsupportedAddressing(
                "Transfer Acceleration cannot be used with path-style addressing",
            ));
        }
        if region.partition() == Partition::AwsCn {
            if self.fips {
                return Err(PresignError::UnsupportedAddressing(
                    "the China partition has no FIPS endpoints",
                ));
            }
            if self.accelerate {
                return Err(PresignError::UnsupportedAddressing(
                    "Transfer Acceleration is not available in the China partition",
                ));
            }
        }
        Ok(())
    }

    /// The URL the form is posted to for `bucket`.
    pub fn url(&self, region: &Region, bucket: &BucketName) -> Result<String, PresignError> {
        self.check(region)?;
        if let Some(endpoint) = &self.endpoint {
            return Ok(custom_url(endpoint, self.force_path_style, bucket));
        }
        let suffix = region.partition().dns_suffix();
        let dual_stack = if self.dual_stack { ".dualstack" } else { "" };
        let virtual_hosted = !self.force_path_style && bucket.is_virtual_hostable(false);
        if self.accelerate {
            if !virtual_hosted {
                return Err(PresignError::UnsupportedAddressing(
                    "Transfer Acceleration needs a DNS-compatible bucket name without dots",
                ));
            }
            return Ok(format!(
                "https://{bucket}.s3-accelerate{dual_stack}.{suffix}/"
            ));
        }
        let fips = if self.fips { "-fips" } else { "" };
        let (region, bucket) = (region.as_str(), bucket.as_str());
        // `concat` rather than `format!`: one exact allocation, and this runs per ticket.
        Ok(if virtual_hosted {
            [
                "https://", bucket, ".s3", fips, dual_stack, ".", region, ".", suffix, "/",
            ]
            .concat()
        } else {
            // Bucket names are unreserved characters only: no percent-encoding needed.
            [
                "https://s3",
                fips,
                dual_stack,
                ".",
                region,
                ".",
                suffix,
                "/",
                bucket,
            ]
            .concat()
        })
    }
}

fn custom_url(endpoint: &Endpoint, force_path_style: bool, bucket: &BucketName) -> String {
    let scheme = endpoint.0.scheme();
    let authority = endpoint.authority();
    let path = endpoint.0.path();
    // Over plain http a dotted name needs no certificate to match, so the rule set
    // lets it be virtual-hosted there; never for an IP address host.
    let virtual_hosted = !force_path_style
        && !endpoint.is_ip()
        && (bucket.is_virtual_hostable(false)
            || (scheme == "http" && bucket.is_virtual_hostable(true)));
    if virtual_hosted {
        format!("{scheme}://{bucket}.{authority}{path}")
    } else {
        let slash = if path.ends_with('/') { "" } else { "/" };
        format!("{scheme}://{authority}{path}{slash}{bucket}")
    }
}

#[cfg(test)]
mod tests;
