//! One refusal of a setting at start-up, whoever checks it.
//!
//! `auth`, `policy` and `webhook` each check their own settings and name them relative
//! to their section (`issuer`, `max_size`); `config` places them in the file
//! (`auth.issuer`, `tenants.acme.max_size`). So every refusal reads the same way, and
//! no checker needs to know the configuration that holds it.

/// A setting whose value cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct InvalidSetting {
    /// The setting's path; relative to its section until [`InvalidSetting::in_section`].
    pub setting: String,
    /// What is wrong with it, for the person who wrote the file.
    pub reason: String,
}

impl InvalidSetting {
    /// `setting` is refused for `reason`.
    pub fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// The same refusal, its setting placed under `section` (`tenants.acme`); an empty
    /// setting names the section itself.
    pub fn in_section(mut self, section: &str) -> Self {
        self.setting = if self.setting.is_empty() {
            section.to_owned()
        } else {
            format!("{section}.{}", self.setting)
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_placed_in_their_section() {
        let error = InvalidSetting::new("max_size", "too big").in_section("tenants.acme");
        assert_eq!(error.to_string(), "tenants.acme.max_size: too big");
        let whole = InvalidSetting::new("", "bad id").in_section("tenants.Acme");
        assert_eq!(whole.setting, "tenants.Acme");
    }
}
