//! The runtime context a rate-limited source gives its inner reader.

use std::sync::Arc;

use super::position::RatePosition;
use crate::operator::RuntimeContext;

/// `ctx` with the inner readers' positions for restored state: the runtime
/// restores the rate-limited readers' positions, and an inner reader that looks at
/// every saved position when it is created (a Kafka reader, which takes from them
/// the partitions it is assigned, whichever reader had them) must find its own
/// kind there. Bytes that are no rate-limited position give nothing (their restore
/// fails in the reader they are dealt to).
pub(super) fn inner_context(ctx: &RuntimeContext) -> RuntimeContext {
    let mut inner = ctx.clone();
    inner.restored.by_subtask = ctx
        .restored
        .by_subtask
        .iter()
        .map(|saved| {
            let position = RatePosition::decode(saved.as_deref()?).ok()?;
            position.inner.map(Arc::from)
        })
        .collect();
    inner
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::checkpoint::RestoredState;
    use crate::clock::ManualClock;
    use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
    use crate::sources::RateLimiterStrategy;

    /// Each saved subtask's bytes, as a reader was created with them.
    type Created = Vec<Option<Vec<u8>>>;

    /// A source that keeps the restored state its readers are created with.
    struct Capturing(Arc<Mutex<Vec<Created>>>);

    struct Done;

    impl SourceReader<u64> for Done {
        fn poll_next(&mut self, _out: &mut SourceOutput<u64>) -> SourcePoll {
            SourcePoll::Finished
        }
    }

    impl Source<u64> for Capturing {
        fn boundedness(&self) -> Boundedness {
            Boundedness::Bounded
        }

        fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
            let restored = ctx.restored.by_subtask.iter();
            let restored = restored.map(|s| s.as_deref().map(<[u8]>::to_vec));
            self.0.lock().unwrap().push(restored.collect());
            Box::new(Done)
        }
    }

    #[test]
    fn the_inner_reader_is_created_with_every_saved_inner_position() {
        let saved = |inner: &[u8], skip| {
            let position = RatePosition {
                inner: Some(inner.to_vec()),
                skip,
                reread: Vec::new(),
            };
            Some(Arc::from(position.encode().unwrap()))
        };
        let by_subtask: Vec<Option<Arc<[u8]>>> = vec![
            saved(&[1, 2], 0),
            None,
            Some(Arc::from(&b"junk"[..])),
            saved(&[3], 4),
        ];
        let ctx = RuntimeContext {
            restored: RestoredState {
                checkpoint_id: Some(9),
                by_subtask: by_subtask.into(),
            },
            ..RuntimeContext::standalone("paced", 1, 3, Arc::new(ManualClock::new()))
        };
        assert_eq!(inner_context(&ctx).restored.checkpoint_id, Some(9));
        let created = Arc::new(Mutex::new(Vec::new()));
        let paced =
            Capturing(created.clone()).rate_limited(RateLimiterStrategy::per_second(10.0).unwrap());
        let _reader = paced.create_reader(&ctx);
        let expected = vec![Some(vec![1, 2]), None, None, Some(vec![3])];
        assert_eq!(*created.lock().unwrap(), [expected]);
    }
}
