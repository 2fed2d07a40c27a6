//! State TTL in a running job: a keyed function's value state with a 1 s TTL on
//! the job's manual clock expires between records of its key, and the job's output
//! shows it. The function moves the clock itself (records carry how far), so what
//! expired is exact whatever the threads' timing.

use std::sync::Arc;
use std::time::Duration;

use flink_core::clock::ManualClock;
use flink_runtime::prelude::*;

/// (key, milliseconds to move the job's clock before counting the record).
type Tick = (u64, u64);

/// Counts each key's records in a value state that expires 1 s after its last write.
#[derive(Clone)]
struct ExpiringCount {
    clock: ManualClock,
    count: ValueStateDescriptor<u64>,
}

impl ExpiringCount {
    fn new(clock: &ManualClock) -> Self {
        let ttl = StateTtlConfig::builder(Duration::from_secs(1))
            .update_type(TtlUpdateType::OnCreateAndWrite)
            .build()
            .unwrap();
        Self {
            clock: clock.clone(),
            count: ValueStateDescriptor::new("count").with_ttl(ttl),
        }
    }
}

impl KeyedProcessFunction<u64, Tick, (u64, u64)> for ExpiringCount {
    type State = ();

    fn process_element(&mut self, tick: Tick, ctx: &mut KeyedContext<'_, u64, (), (u64, u64)>) {
        self.clock.advance(Duration::from_millis(tick.1));
        let mut count = ctx.get_state(&self.count);
        let n = count.value().copied().unwrap_or(0) + 1;
        count.update(n);
        ctx.collect((tick.0, n));
    }
}

#[test]
fn a_ttl_on_the_jobs_clock_expires_a_keys_state_between_its_records() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    // One instance: the clock moves in the order the records are listed.
    env.set_parallelism(1);
    env.set_buffer_timeout(Some(Duration::ZERO));
    let ticks: Vec<Tick> = vec![
        (1, 0),
        (2, 0),
        (1, 0),
        // t = 1.5 s: both keys were last written at 0: expired.
        (1, 1_500),
        (2, 0),
        // t = 2.0 s: key 1 was written at 1.5 s: kept.
        (1, 500),
        // t = 2.6 s: key 2 was written at 1.5 s: expired; key 1 (2.0 s) not.
        (2, 600),
        (1, 0),
    ];
    let counts = env
        .from_collection(ticks)
        .key_by(|t| t.0)
        .process_function(ExpiringCount::new(&clock))
        .collect_vec();
    env.execute("state ttl").unwrap();
    assert_eq!(
        counts.take(),
        [
            (1, 1),
            (2, 1),
            (1, 2),
            (1, 1),
            (2, 1),
            (1, 2),
            (2, 1),
            (1, 3)
        ]
    );
}
