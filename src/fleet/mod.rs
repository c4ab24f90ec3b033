//! The fleet view: every coordinator instance's latest state — ordered, aged, expired and
//! merged — shared by agents (through their feedback handler), transports (which report its
//! [`Observed`] outcome to senders) and the metrics bridge.

mod config;
mod coordinator;
mod deadlines;
mod demand;
mod fair;
mod interest;
mod members;
mod merge;
mod observed;
mod scaling;
mod signal;
mod view;

pub use config::{Fallback, FleetConfig, bridge_defaults};
pub use coordinator::CoordinatorView;
pub use demand::{DemandTotals, DemandView};
pub use fair::{Claim, allocate};
pub use interest::{Follow, Interest};
pub use observed::Observed;
pub use scaling::{Scaling, ScalingConfig};
pub use signal::Signal;
pub use view::FleetView;
