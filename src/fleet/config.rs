//! How a fleet view judges events and silence (`feedback.fleet:` on agents, `bridge.fleet:` on
//! the bridge).

use serde::{Deserialize, Deserializer, Serialize};

use crate::invalid::{InvalidSetting, at_least_one};

/// What happens to an instance that stopped sending heartbeats.
///
/// Written `hold_last`, or `{scale: 0.5}` (YAML's tagged form `!scale 0.5` works too).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Keep obeying its last event until it is forgotten.
    HoldLast,
    /// Drop it from the merge but cap the scale at this value until it is forgotten.
    Scale(f64),
}

impl<'de> Deserialize<'de> for Fallback {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FallbackVisitor)
    }
}

struct FallbackVisitor;

impl<'de> serde::de::Visitor<'de> for FallbackVisitor {
    type Value = Fallback;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hold_last or {scale: <0..=1>}")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fallback, E> {
        match v {
            "hold_last" => Ok(Fallback::HoldLast),
            other => Err(E::unknown_variant(other, &["hold_last", "scale"])),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fallback, A::Error> {
        use serde::de::Error;
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let fallback = match key.as_str() {
            "scale" => Fallback::Scale(map.next_value()?),
            "hold_last" => {
                map.next_value::<serde::de::IgnoredAny>()?;
                Fallback::HoldLast
            }
            other => return Err(A::Error::unknown_variant(other, &["hold_last", "scale"])),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom("a fallback has exactly one key"));
        }
        Ok(fallback)
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Fallback, A::Error> {
        use serde::de::{Error, VariantAccess};
        let (name, variant) = data.variant::<String>()?;
        match name.as_str() {
            "scale" => Ok(Fallback::Scale(variant.newtype_variant()?)),
            "hold_last" => variant.unit_variant().map(|()| Fallback::HoldLast),
            other => Err(A::Error::unknown_variant(other, &["hold_last", "scale"])),
        }
    }
}

/// How the fleet view judges events and silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Heartbeats an instance may miss before it counts as silent.
    pub missed_heartbeats: u32,
    /// Heartbeat interval assumed for events that do not state theirs, in milliseconds.
    pub default_heartbeat_ms: u64,
    /// An event is stale, and ignored, when it is this much older than its instance's
    /// freshest events, in milliseconds; 0 disables the check. Ages are measured against each
    /// instance's own clock (the smallest delay seen from it is its baseline), so a store whose
    /// clock is off still works, while events it queued during an outage and delivered late
    /// are recognised.
    pub max_event_age_ms: u64,
    /// The first event of an unknown instance is ignored when its timestamp is further than
    /// this from the local clock, either way, in milliseconds (old events of long-dead pods
    /// read from the last-value stream); 0 disables the check.
    pub max_clock_skew_ms: u64,
    /// What a silent instance counts as.
    pub fallback: Fallback,
    /// A silent instance is forgotten entirely after this long without events, in
    /// milliseconds (a pod that died without saying goodbye).
    pub forget_after_ms: u64,
    /// An instance that said goodbye (`leaving`) is remembered this long, in milliseconds,
    /// so that none of its older events — replayed from the last-value stream at start or
    /// after a reconnect, or delivered late — brings it back. Longer than the last-value
    /// stream keeps events (`nats.state_max_age_ms`, 10 min by default).
    pub remember_departed_ms: u64,
}

impl Default for FleetConfig {
    /// An agent's view: a silent coordinator caps the scale at 0.5 for five minutes.
    fn default() -> Self {
        Self {
            missed_heartbeats: 3,
            default_heartbeat_ms: 1_000,
            max_event_age_ms: 15_000,
            max_clock_skew_ms: 300_000,
            fallback: Fallback::Scale(0.5),
            forget_after_ms: 300_000,
            remember_departed_ms: 900_000,
        }
    }
}

impl FleetConfig {
    /// The bridge's view: a silent instance counts with its last state (`hold_last`) for
    /// 10 s, so that a pod that died under pressure keeps asking for capacity that long.
    pub fn bridge() -> Self {
        Self {
            fallback: Fallback::HoldLast,
            forget_after_ms: 10_000,
            ..Self::default()
        }
    }

    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[
            ("missed_heartbeats", u64::from(self.missed_heartbeats)),
            ("default_heartbeat_ms", self.default_heartbeat_ms),
            ("forget_after_ms", self.forget_after_ms),
            ("remember_departed_ms", self.remember_departed_ms),
        ])?;
        if self.max_clock_skew_ms > 0 && self.max_clock_skew_ms < self.max_event_age_ms {
            return Err(InvalidSetting::new(
                "max_clock_skew_ms",
                "must not be below max_event_age_ms (or 0 to disable)",
            ));
        }
        if let Fallback::Scale(s) = self.fallback {
            if !(0.0..=1.0).contains(&s) {
                return Err(InvalidSetting::new(
                    "fallback",
                    format!("scale must be within [0, 1], got {s}"),
                ));
            }
        }
        Ok(())
    }
}

/// Reads a `fleet:` section whose missing keys take the bridge's defaults
/// ([`FleetConfig::bridge`]) rather than an agent's; for `#[serde(deserialize_with)]`.
pub fn bridge_defaults<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<FleetConfig, D::Error> {
    use serde::de::Error;
    use serde_yaml_ng::Value;
    let given = Value::deserialize(deserializer)?;
    let mut merged = serde_yaml_ng::to_value(FleetConfig::bridge()).map_err(D::Error::custom)?;
    match (given, &mut merged) {
        (Value::Mapping(keys), Value::Mapping(base)) => base.extend(keys),
        (Value::Null, _) => {}
        (other, _) => {
            return Err(D::Error::custom(format!(
                "expected a mapping of fleet settings, got {other:?}"
            )));
        }
    }
    FleetConfig::deserialize(merged).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_reads_every_written_form() {
        let yaml = |text: &str| -> Result<Fallback, serde_yaml_ng::Error> {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
            serde_yaml_ng::from_value(value)
        };
        assert_eq!(yaml("hold_last").unwrap(), Fallback::HoldLast);
        assert_eq!(yaml("{scale: 0.25}").unwrap(), Fallback::Scale(0.25));
        assert_eq!(yaml("!scale 0.25").unwrap(), Fallback::Scale(0.25));
        assert!(yaml("hold").is_err());
        assert!(yaml("{scale: 0.25, hold_last: 1}").is_err());
        let json = serde_json::to_value(Fallback::Scale(0.5)).unwrap();
        assert_eq!(
            serde_json::from_value::<Fallback>(json).unwrap(),
            Fallback::Scale(0.5)
        );
    }

    #[test]
    fn bridge_sections_take_the_bridges_defaults() {
        #[derive(Deserialize)]
        struct Section {
            #[serde(deserialize_with = "bridge_defaults")]
            fleet: FleetConfig,
        }
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("fleet: {missed_heartbeats: 5, fallback: !scale 0.5}").unwrap();
        let section: Section = serde_yaml_ng::from_value(value).unwrap();
        assert_eq!(
            section.fleet,
            FleetConfig {
                missed_heartbeats: 5,
                fallback: Fallback::Scale(0.5),
                ..FleetConfig::bridge()
            }
        );
    }
}
