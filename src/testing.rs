//! Fakes of the host services, for unit tests.

use std::cell::RefCell;

use crate::config::Config;
use crate::publish::{PublishError, PublishItem, Publisher};
use crate::Services;

/// A publisher that records what it was asked to publish.
#[derive(Default)]
pub struct RecordingPublisher {
    pub published: RefCell<Vec<PublishItem>>,
}

impl Publisher for RecordingPublisher {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        self.published.borrow_mut().extend_from_slice(items);
        Ok(())
    }
}

/// Owns a set of fakes and lends them out as [`Services`].
pub struct TestServices {
    pub config: Config,
    pub publisher: RecordingPublisher,
}

impl TestServices {
    pub fn new() -> Self {
        TestServices {
            config: Config::default(),
            publisher: RecordingPublisher::default(),
        }
    }

    pub fn services(&self) -> Services<'_> {
        Services {
            config: &self.config,
            publisher: &self.publisher,
        }
    }
}
