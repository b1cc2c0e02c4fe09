//! ELO ratings for strategies: K = 32, start 1500.
//!
//! A game is two epochs run under different strategies, compared by cost (lower wins; within
//! `DRAW_MARGIN` of each other it is a draw). `update` moves both ratings by K times (score -
//! expected), so the sum of the two ratings is unchanged by a game. No allocation.

/// Rating change per game at full surprise.
pub const K: f64 = 32.0;
/// Rating of a strategy that has played no game.
pub const START: f64 = 1500.0;
/// Relative cost difference below which a game is a draw (2 %).
pub const DRAW_MARGIN: f64 = 0.02;

/// A game's result, from the first player's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Win,
    Loss,
    Draw,
}

impl Outcome {
    /// Points for the first player: 1, 0 or 1/2.
    pub fn points(self) -> f64 {
        match self {
            Outcome::Win => 1.0,
            Outcome::Loss => 0.0,
            Outcome::Draw => 0.5,
        }
    }

    pub fn reversed(self) -> Outcome {
        match self {
            Outcome::Win => Outcome::Loss,
            Outcome::Loss => Outcome::Win,
            Outcome::Draw => Outcome::Draw,
        }
    }
}

/// The result for A of costs `a` and `b` (lower is better): a draw when they differ by at most
/// `margin` of the larger one.
pub fn outcome(a: f64, b: f64, margin: f64) -> Outcome {
    let big = a.abs().max(b.abs());
    if (a - b).abs() <= margin * big {
        Outcome::Draw
    } else if a < b {
        Outcome::Win
    } else {
        Outcome::Loss
    }
}

/// The score A is expected to make against B: 1 / (1 + 10^((rb - ra) / 400)).
pub fn expected(ra: f64, rb: f64) -> f64 {
    1.0 / (1.0 + super::math::pow10((rb - ra) / 400.0))
}

/// A strategy's rating and record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rating {
    pub rating: f64,
    pub wins: u32,
    pub losses: u32,
    pub draws: u32,
}

impl Rating {
    pub const fn new() -> Self {
        Rating::at(START)
    }

    pub const fn at(rating: f64) -> Self {
        Rating {
            rating,
            wins: 0,
            losses: 0,
            draws: 0,
        }
    }

    pub fn games(&self) -> u32 {
        self.wins + self.losses + self.draws
    }

    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Win => self.wins += 1,
            Outcome::Loss => self.losses += 1,
            Outcome::Draw => self.draws += 1,
        }
    }
}

impl Default for Rating {
    fn default() -> Self {
        Rating::new()
    }
}

/// Plays one game: `o` is A's result. Both ratings move by the same amount in opposite directions.
pub fn update(a: &mut Rating, b: &mut Rating, o: Outcome) {
    let ea = expected(a.rating, b.rating);
    let delta = K * (o.points() - ea);
    a.rating += delta;
    b.rating -= delta;
    a.count(o);
    b.count(o.reversed());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn expected_score_matches_hand_values() {
        assert!(close(expected(1500.0, 1500.0), 0.5));
        // 1 / (1 + 10^-0.5) = 1 / 1.316227766 = 0.759746927
        assert!(close(expected(1600.0, 1400.0), 0.759746927));
        assert!(close(expected(1400.0, 1600.0), 0.240253073));
        // 400 points: 1 / (1 + 0.1) = 0.909090909
        assert!(close(expected(1900.0, 1500.0), 0.909090909));
    }

    #[test]
    fn equal_ratings_win_loss_draw() {
        let (mut a, mut b) = (Rating::new(), Rating::new());
        update(&mut a, &mut b, Outcome::Win);
        assert!(close(a.rating, 1516.0) && close(b.rating, 1484.0));
        assert_eq!((a.wins, a.losses, b.wins, b.losses), (1, 0, 0, 1));

        let (mut a, mut b) = (Rating::new(), Rating::new());
        update(&mut a, &mut b, Outcome::Draw);
        assert!(close(a.rating, 1500.0) && close(b.rating, 1500.0));
        assert_eq!((a.draws, b.draws), (1, 1));
    }

    #[test]
    fn favourite_gains_little_underdog_gains_much() {
        // 1600 beats 1400: +32 * 0.240253073 = +7.688098
        let (mut a, mut b) = (Rating::at(1600.0), Rating::at(1400.0));
        update(&mut a, &mut b, Outcome::Win);
        assert!(close(a.rating, 1607.688098), "{}", a.rating);
        assert!(close(b.rating, 1392.311902));
        // 1600 loses to 1400: -32 * 0.759746927 = -24.311902
        let (mut a, mut b) = (Rating::at(1600.0), Rating::at(1400.0));
        update(&mut a, &mut b, Outcome::Loss);
        assert!(close(a.rating, 1575.688098), "{}", a.rating);
        assert!(close(b.rating, 1424.311902));
        // Draw: 32 * (0.5 - 0.759746927) = -8.311902
        let (mut a, mut b) = (Rating::at(1600.0), Rating::at(1400.0));
        update(&mut a, &mut b, Outcome::Draw);
        assert!(close(a.rating, 1591.688098));
        assert!(close(a.rating + b.rating, 3000.0));
    }

    #[test]
    fn outcome_uses_cost_and_draw_margin() {
        assert_eq!(outcome(0.9, 1.0, DRAW_MARGIN), Outcome::Win);
        assert_eq!(outcome(1.1, 1.0, DRAW_MARGIN), Outcome::Loss);
        assert_eq!(outcome(1.01, 1.0, DRAW_MARGIN), Outcome::Draw);
        assert_eq!(outcome(0.99, 1.0, DRAW_MARGIN), Outcome::Draw);
        assert_eq!(outcome(0.0, 0.0, DRAW_MARGIN), Outcome::Draw);
        assert_eq!(outcome(0.97, 1.0, DRAW_MARGIN), Outcome::Win);
    }

    #[test]
    fn a_consistently_better_player_climbs_and_gains_shrink() {
        let (mut a, mut b) = (Rating::new(), Rating::new());
        let mut last_gain = f64::INFINITY;
        for _ in 0..50 {
            let before = a.rating;
            update(&mut a, &mut b, Outcome::Win);
            let gain = a.rating - before;
            assert!(gain > 0.0 && gain < last_gain);
            last_gain = gain;
        }
        // Reference: iterating the formula by hand gives 1746.0817 after 50 straight wins.
        assert!((a.rating - 1746.0817).abs() < 1e-3, "{}", a.rating);
        assert!(close(a.rating + b.rating, 3000.0));
        assert_eq!(a.games(), 50);
    }
}
