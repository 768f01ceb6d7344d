//! Client-side pacing to a documented API rate. GetFindings allows 3 requests a
//! second with a burst of 6; pacing to that avoids throttles and the retry
//! back-off they cause, so a long listing takes about as long as the quota allows.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Pace {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pace {
    pub fn new(rate: f64, burst: f64) -> Pace {
        Pace {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until a request may go.
    pub async fn wait(&self) {
        let delay = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let (tokens, last) = *state;
            let now = Instant::now();
            let refilled =
                (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
            let after = refilled - 1.0;
            *state = (after, now);
            if after >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-after / self.rate)
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let pace = Pace::new(3.0, 6.0);
        let start = Instant::now();
        for _ in 0..12 {
            pace.wait().await;
        }
        // 6 at once, then 6 more at 3 a second.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.9..2.1).contains(&elapsed), "{elapsed}");
    }
}
