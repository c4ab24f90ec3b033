//! Max-min fair allocation of a store's budget among its agents' demands, class by class in
//! strict priority order, into the [`FairRates`] its feedback events carry.

use crate::event::{Class, DemandEvent, FairRates};

/// One agent's claim on a store's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// Its priority class.
    pub class: Class,
    /// Its share weight (> 0).
    pub weight: f64,
    /// Rows per second it would send unthrottled.
    pub demand: f64,
}

impl Claim {
    /// The claim a demand event makes (unknown classes count as `standard`).
    pub fn of(event: &DemandEvent) -> Self {
        Self {
            class: Class::of_wire(event.class.as_deref()),
            weight: event.weight,
            demand: event.offered_per_sec,
        }
    }
}

/// Divides `budget` rows per second among `claims`: classes in strict order, and within a
/// class max-min fair by weight (water-filling). Returns the rate per unit of weight of each
/// class, so that an agent sending `min(demand, weight × rate)` gets its allocation.
///
/// A class whose demands all fit gets a rate above its largest demand per weight: that
/// largest demand plus an equal share (per weight) of what is left, so that an agent whose
/// demand grows may take only its share of the spare budget before the next event. A class
/// without claims gets the whole of what is left (a newcomer of weight 1 may use it); a class
/// after one that used the whole budget gets 0. Cost: O(n log n) in the claims.
pub fn allocate(budget: f64, claims: &[Claim]) -> FairRates {
    let mut left = budget.max(0.0);
    let mut rates = FairRates::default();
    for class in Class::ALL {
        let mut mine: Vec<(f64, f64)> = claims
            .iter()
            .filter(|c| c.class == class && c.weight > 0.0 && c.weight.is_finite())
            .map(|c| (c.demand.max(0.0) / c.weight, c.weight))
            .collect();
        mine.sort_by(|a, b| a.0.total_cmp(&b.0));
        let demand: f64 = mine.iter().map(|(per, w)| per * w).sum();
        let weights: f64 = mine.iter().map(|(_, w)| w).sum();
        let rate = if mine.is_empty() {
            left
        } else if demand <= left {
            let top = mine.last().map_or(0.0, |(per, _)| *per);
            let spare = left - demand;
            left = spare;
            top + spare / weights
        } else {
            // Water-filling: satisfy the smallest demands per weight while the level that the
            // rest would share stays above them.
            let (mut rest, mut w_rest) = (left, weights);
            let mut level = 0.0;
            for (per, w) in &mine {
                level = rest / w_rest;
                if *per > level {
                    break;
                }
                rest -= per * w;
                w_rest -= w;
            }
            left = 0.0;
            level
        };
        rates.set(class, rate);
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(class: Class, weight: f64, demand: f64) -> Claim {
        Claim {
            class,
            weight,
            demand,
        }
    }

    fn std(demand: f64) -> Claim {
        claim(Class::Standard, 1.0, demand)
    }

    fn allocation(rates: &FairRates, c: &Claim) -> f64 {
        c.demand.min(c.weight * rates.get(c.class))
    }

    #[test]
    fn small_demands_are_served_whole_and_the_rest_share_equally() {
        let claims = [std(50.0), std(100.0), std(1_000.0), std(2_000.0)];
        let r = allocate(1_150.0, &claims);
        // 50 and 100 fit; 1,000 left for two: 500 each.
        assert!((r.standard - 500.0).abs() < 1e-9, "{r:?}");
        let total: f64 = claims.iter().map(|c| allocation(&r, c)).sum();
        assert!((total - 1_150.0).abs() < 1e-9);
    }

    #[test]
    fn weights_share_in_proportion() {
        let claims = [
            claim(Class::Standard, 3.0, 5_000.0),
            claim(Class::Standard, 1.0, 5_000.0),
        ];
        let r = allocate(2_000.0, &claims);
        assert!((allocation(&r, &claims[0]) - 1_500.0).abs() < 1e-9);
        assert!((allocation(&r, &claims[1]) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn classes_are_served_in_strict_order() {
        let claims = [
            claim(Class::Critical, 1.0, 500.0),
            claim(Class::Critical, 1.0, 500.0),
            claim(Class::Bulk, 1.0, 2_000.0),
            claim(Class::Bulk, 1.0, 2_000.0),
        ];
        let r = allocate(2_000.0, &claims);
        assert!(r.critical >= 500.0);
        assert!((r.bulk - 500.0).abs() < 1e-9, "{r:?}");
        // No standard agents: a newcomer may take what bulk would otherwise share.
        assert!((r.standard - 1_000.0).abs() < 1e-9);
        // Critical alone beyond the budget: bulk gets nothing.
        let r = allocate(800.0, &claims);
        assert!((r.critical - 400.0).abs() < 1e-9);
        assert_eq!(r.bulk, 0.0);
    }

    #[test]
    fn under_load_the_rate_leaves_room_for_growth_but_only_a_share() {
        let claims = [std(100.0), std(300.0)];
        let r = allocate(1_000.0, &claims);
        // 600 spare over two agents: 300 + 300.
        assert!((r.standard - 600.0).abs() < 1e-9);
        assert_eq!(allocate(-5.0, &claims).standard, 0.0);
        assert_eq!(allocate(1_000.0, &[]).standard, 1_000.0);
    }
}
