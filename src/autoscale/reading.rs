//! What the model is given at each poll: one reading per trigger and the target's pod counts.

/// What one trigger's source answered, before KEDA's scaler interprets it.
///
/// The scaler decides what an empty answer means: the Prometheus scaler reads it as 0 while
/// `ignoreNullValues` is true (its default) and as an error otherwise; the nats-jetstream and
/// metrics-api scalers always fail on it (stream or value not found; a missing consumer is no
/// empty answer: KEDA then reads the stream's last sequence).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A number (a query's single series, a consumer's lag, a JSON value).
    Value(f64),
    /// The source answered, with nothing: a PromQL result with no series, a missing stream
    /// or JSON field.
    Empty,
    /// The source could not be read or its answer is refused: Prometheus down or an error
    /// status, a query returning more than one series, a 404 from the bridge.
    Failed,
}

impl Reading {
    /// The number, when there is one.
    pub fn value(self) -> Option<f64> {
        match self {
            Self::Value(v) => Some(v),
            Self::Empty | Self::Failed => None,
        }
    }
}

/// `Some(v)` is a value and `None` an empty answer, the meaning the simulator's series give.
impl From<Option<f64>> for Reading {
    fn from(value: Option<f64>) -> Self {
        value.map_or(Self::Empty, Self::Value)
    }
}

impl From<f64> for Reading {
    fn from(value: f64) -> Self {
        Self::Value(value)
    }
}

/// The scale target's pods as the HPA sees them.
///
/// `current` is the Deployment's replica count (`spec.replicas`; the model takes
/// `status.replicas` to be the same, i.e. pods are created as soon as the count changes).
/// `ready` is how many of them are running and ready: the HPA multiplies a `Value` metric's
/// ratio by it, and KEDA divides a `Value` fallback by it. `AverageValue` metrics ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// Replicas the Deployment has (spec).
    pub current: u32,
    /// Of those, running and ready.
    pub ready: u32,
}

impl Replicas {
    /// `current` replicas, `ready` of them ready (capped at `current`).
    pub fn new(current: u32, ready: u32) -> Self {
        Self {
            current,
            ready: ready.min(current),
        }
    }
}

/// Every replica ready.
impl From<u32> for Replicas {
    fn from(current: u32) -> Self {
        Self {
            current,
            ready: current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_an_empty_answer_and_ready_never_exceeds_current() {
        assert_eq!(Reading::from(None), Reading::Empty);
        assert_eq!(Reading::from(Some(2.5)).value(), Some(2.5));
        assert_eq!(Reading::Failed.value(), None);
        assert_eq!(
            Replicas::new(3, 5),
            Replicas {
                current: 3,
                ready: 3
            }
        );
        assert_eq!(Replicas::from(4).ready, 4);
    }
}
