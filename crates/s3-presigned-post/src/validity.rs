//! How long a signature is accepted: one rule for POST policies and presigned URLs.

use std::time::Duration;

use crate::PresignError;

/// How long a ticket or URL stays valid: 1 second to 7 days, what SigV4 accepts.
///
/// A type rather than a checked `Duration`, so that a validity that has been checked
/// once (and then shortened, say to what temporary credentials have left) never needs
/// checking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Validity(Duration);

impl Validity {
    /// The shortest: one second (a policy's `expiration` has whole seconds).
    pub const MIN: Self = Self(Duration::from_secs(1));

    /// The longest SigV4 allows: 7 days.
    pub const MAX: Self = Self(Duration::from_secs(7 * 24 * 60 * 60));

    /// The seed's default: one hour.
    pub const DEFAULT: Self = Self(Duration::from_secs(3600));

    /// `duration`, if it is 1 second to 7 days ([`PresignError::InvalidExpiry`] if not;
    /// the seed allows any number).
    pub fn new(duration: Duration) -> Result<Self, PresignError> {
        if duration < Self::MIN.0 || duration > Self::MAX.0 {
            return Err(PresignError::InvalidExpiry(duration));
        }
        Ok(Self(duration))
    }

    /// The validity as a duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// This validity, shortened to `limit` if that is shorter; `None` when `limit` is
    /// under a second (nothing could be signed for it).
    pub fn at_most(self, limit: Duration) -> Option<Self> {
        if limit >= self.0 {
            return Some(self);
        }
        Self::new(limit).ok()
    }
}

impl Default for Validity {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validities_are_one_second_to_seven_days() {
        assert!(Validity::new(Duration::ZERO).is_err());
        assert!(Validity::new(Duration::from_millis(999)).is_err());
        assert_eq!(
            Validity::new(Duration::from_secs(1)).unwrap(),
            Validity::MIN
        );
        assert_eq!(Validity::new(Validity::MAX.get()).unwrap(), Validity::MAX);
        assert!(Validity::new(Validity::MAX.get() + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn shortening_keeps_the_shorter_and_refuses_under_a_second() {
        let hour = Validity::DEFAULT;
        assert_eq!(hour.at_most(Duration::from_secs(7200)), Some(hour));
        assert_eq!(
            hour.at_most(Duration::from_secs(60)).map(Validity::get),
            Some(Duration::from_secs(60))
        );
        assert_eq!(hour.at_most(Duration::from_millis(500)), None);
    }
}
