//! What every handler shares: the application ([`App`]: the use cases' dependencies,
//! the tenants, the clock) behind one cheap handle, and the limits of a request body.

use std::sync::Arc;

pub use crate::app::App;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest completion body: 10 000 parts of about 100 bytes each.
pub(super) const COMPLETE_BODY_BYTES: usize = 1024 * 1024;

/// Shared by all handlers: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
