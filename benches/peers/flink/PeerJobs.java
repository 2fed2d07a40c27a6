// The throughput harness's jobs (benches/src/bin/throughput.rs) on Apache Flink 2.3's
// DataStream API, run in a local MiniCluster inside this JVM, so that the Flink column
// of docs/benchmarks.md can be reproduced. benches/peers/flink/run.sh compiles and runs it.
//
// usage: java -cp <classes>:<flink jars> PeerJobs <job> [N]
//   chain          fromSequence(1, N) -> map(x*2) -> filter(x%3 != 0) -> counting sink, p=1
//   nochain        the same with operator chaining disabled (four tasks, three network hops)
//   keyed          fromSequence -> map((x%1000, 1)) -> keyBy(f0) -> sum(1) -> counting sink, p=2
//   backpressure   unbounded sequence -> counting map (chained to it) -> network -> sink
//                  busy-waiting to 20,000 records/s; N = seconds to watch (default 10)
//   async          fromSequence -> unorderedWait(a call completing 1 ms after it starts,
//                  capacity 100, timeout 30 s) -> counting sink, p=1
//   async-ordered  the same with orderedWait
//   keyed-ckpt     keyed with 100,000 keys (x % 100,000), a checkpoint every second to a local
//                  directory (system property peer.checkpoints), heap (hashmap) state
//   window         fromSequence (p=1) -> event time x/10 ms, monotonous watermarks ->
//                  map((x%100, 1)) -> keyBy(f0) -> tumbling 1 s event-time windows -> reduce(sum)
//                  (p=2) -> a sink checking that the windows' counts add up to N
//
// Prints one line: flink <job> records=<N> seconds=<s> rate=<N/s> [fields], where
// seconds is JobExecutionResult.getNetRuntime() (the job's run as the JobManager saw it),
// as the harness's seconds are the job's run. The sink's count is checked against the
// closed form; a mismatch exits with status 1. backpressure reports, as the harness does,
// the source's rate from one second after its first record to the end of the watch.

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.ReduceFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.AsyncDataStream;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.async.ResultFuture;
import org.apache.flink.streaming.api.functions.async.RichAsyncFunction;

public final class PeerJobs {

    /** Records the sinks counted. Every task of a MiniCluster job runs in this JVM. */
    static final AtomicLong SUNK = new AtomicLong();
    /** Records the backpressure job's source side emitted, counted live. */
    static final AtomicLong EMITTED = new AtomicLong();
    /** The counts the window job's windows emitted, added up. */
    static final AtomicLong WINDOW_COUNTS = new AtomicLong();

    static final int KEYS = 1000;
    static final int CHECKPOINTED_KEYS = 100_000;
    static final long CHECKPOINT_INTERVAL_MS = 1000;
    static final int WINDOW_KEYS = 100;
    static final long PACED_SINK_RATE = 20_000;
    static final int ASYNC_CAPACITY = 100;
    static final long ASYNC_DELAY_MICROS = 1000;

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: PeerJobs <chain|nochain|keyed|keyed-ckpt|window|backpressure|async|async-ordered> [N]");
            System.exit(2);
        }
        String job = args[0];
        Long n = args.length == 2 ? Long.parseLong(args[1]) : null;
        String line;
        switch (job) {
            case "chain": line = chain(or(n, 200_000_000L), true); break;
            case "nochain": line = chain(or(n, 50_000_000L), false); break;
            case "keyed": line = keyed(or(n, 50_000_000L)); break;
            case "keyed-ckpt": line = keyedCheckpointed(or(n, 50_000_000L)); break;
            case "window": line = window(or(n, 50_000_000L)); break;
            case "backpressure": line = backpressure(or(n, 10L)); break;
            case "async": line = async(or(n, 500_000L), false); break;
            case "async-ordered": line = async(or(n, 500_000L), true); break;
            default:
                System.err.println("PeerJobs: unknown job '" + job + "'");
                System.exit(2);
                return;
        }
        System.out.println(line);
        System.out.flush();
        // The MiniCluster leaves non-daemon threads behind; the figures are out.
        System.exit(0);
    }

    // ------------------------------------------------------------------ jobs

    static String chain(long n, boolean chained) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        if (!chained) {
            env.disableOperatorChaining();
        }
        env.fromSequence(1, n).name("sequence")
                .map(new Doubler()).name("map")
                .filter(new NotMultipleOf3()).name("filter")
                .sinkTo(new CountingSink<>()).name("count");
        String name = chained ? "chain" : "nochain";
        JobExecutionResult result = env.execute(name);
        expect(name, n - n / 3);
        return line(name, n, result, "");
    }

    static String keyed(long n) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.fromSequence(1, n).name("sequence")
                .map(new ToPair()).returns(Types.TUPLE(Types.LONG, Types.LONG)).name("pair")
                .keyBy(new FirstField())
                .sum(1).name("running-sum")
                .sinkTo(new CountingSink<>()).name("count");
        JobExecutionResult result = env.execute("keyed");
        expect("keyed", n);
        return line("keyed", n, result, "");
    }

    static String keyedCheckpointed(long n) throws Exception {
        String dir = System.getProperty("peer.checkpoints", "/tmp/flink-rs-peers/flink/checkpoints");
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", "hashmap");
        conf.setString("execution.checkpointing.storage", "filesystem");
        conf.setString("execution.checkpointing.dir", Path.of(dir).toUri().toString());
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.enableCheckpointing(CHECKPOINT_INTERVAL_MS);
        env.setParallelism(2);
        env.fromSequence(1, n).name("sequence")
                .map(new ToPairMod(CHECKPOINTED_KEYS)).returns(Types.TUPLE(Types.LONG, Types.LONG)).name("pair")
                .keyBy(new FirstField())
                .sum(1).name("running-sum")
                .sinkTo(new CountingSink<>()).name("count");
        JobExecutionResult result = env.execute("keyed-ckpt");
        expect("keyed-ckpt", n);
        return line("keyed-ckpt", n, result,
                " keys=" + CHECKPOINTED_KEYS + " checkpoint_ms=" + CHECKPOINT_INTERVAL_MS);
    }

    static String window(long n) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.fromSequence(1, n).setParallelism(1).name("sequence")
                .assignTimestampsAndWatermarks(WatermarkStrategy.<Long>forMonotonousTimestamps()
                        .withTimestampAssigner(new TenthOfX())).setParallelism(1).name("event-time")
                .map(new ToPairMod(WINDOW_KEYS)).returns(Types.TUPLE(Types.LONG, Types.LONG))
                .setParallelism(1).name("pair")
                .keyBy(new FirstField())
                .window(TumblingEventTimeWindows.of(Duration.ofSeconds(1)))
                .reduce(new SumSecond()).name("window-sum")
                .sinkTo(new WindowCountSink()).name("check");
        JobExecutionResult result = env.execute("window");
        if (WINDOW_COUNTS.get() != n) {
            System.err.println("PeerJobs: window: the windows counted " + WINDOW_COUNTS.get() + " records, expected " + n);
            System.exit(1);
        }
        return line("window", n, result, " windows=" + SUNK.get());
    }

    static String async(long n, boolean ordered) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<Long> numbers = env.fromSequence(1, n).name("sequence");
        DelayedEcho call = new DelayedEcho();
        DataStream<Long> answered = ordered
                ? AsyncDataStream.orderedWait(numbers, call, 30, TimeUnit.SECONDS, ASYNC_CAPACITY)
                : AsyncDataStream.unorderedWait(numbers, call, 30, TimeUnit.SECONDS, ASYNC_CAPACITY);
        answered.sinkTo(new CountingSink<>()).name("count");
        String name = ordered ? "async-ordered" : "async";
        JobExecutionResult result = env.execute(name);
        expect(name, n);
        // The ceiling: ASYNC_CAPACITY calls per ASYNC_DELAY_MICROS.
        double ceiling = ASYNC_CAPACITY * 1e6 / ASYNC_DELAY_MICROS;
        double rate = n / seconds(result);
        return line(name, n, result, String.format(Locale.ROOT, " ceiling=%.0f of_ceiling=%.1f%%",
                ceiling, 100 * rate / ceiling));
    }

    static String backpressure(long watchSeconds) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        env.fromSequence(1, Long.MAX_VALUE).name("sequence")
                .map(new CountEmitted()).name("count-emitted")
                .sinkTo(new PacedSink(PACED_SINK_RATE)).name("paced-sink")
                .disableChaining();
        JobClient client = env.executeAsync("backpressure");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (EMITTED.get() == 0) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("backpressure: no record within 60 s");
            }
            Thread.sleep(1);
        }
        long maxInFlight = 0, maxRssKib = 0, atOne = 0, atOneNanos = 0;
        for (int tick = 1; tick <= watchSeconds * 10; tick++) {
            Thread.sleep(100);
            long emitted = EMITTED.get();
            maxInFlight = Math.max(maxInFlight, emitted - SUNK.get());
            maxRssKib = Math.max(maxRssKib, rssKib());
            if (tick == 10) {
                atOne = emitted;
                atOneNanos = System.nanoTime();
            }
        }
        long emitted = EMITTED.get();
        double seconds = (System.nanoTime() - atOneNanos) / 1e9;
        long sunk = SUNK.get();
        client.cancel().get(30, TimeUnit.SECONDS);
        long records = emitted - atOne;
        return String.format(Locale.ROOT,
                "flink backpressure records=%d seconds=%.3f rate=%.0f target_sink_rate=%d sink_total=%d"
                        + " max_in_flight=%d max_rss_mb=%.1f",
                records, seconds, records / seconds, PACED_SINK_RATE, sunk, maxInFlight, maxRssKib / 1024.0);
    }

    // ------------------------------------------------------------------ functions

    public static final class Doubler implements MapFunction<Long, Long> {
        @Override public Long map(Long x) { return x * 2; }
    }

    public static final class NotMultipleOf3 implements FilterFunction<Long> {
        @Override public boolean filter(Long x) { return x % 3 != 0; }
    }

    public static final class ToPair implements MapFunction<Long, Tuple2<Long, Long>> {
        @Override public Tuple2<Long, Long> map(Long x) { return Tuple2.of(x % KEYS, 1L); }
    }

    public static final class ToPairMod implements MapFunction<Long, Tuple2<Long, Long>> {
        private final long keys;
        ToPairMod(long keys) { this.keys = keys; }
        @Override public Tuple2<Long, Long> map(Long x) { return Tuple2.of(x % keys, 1L); }
    }

    /** Event time of record x: x / 10 ms (10,000 records per second of event time). */
    public static final class TenthOfX implements SerializableTimestampAssigner<Long> {
        @Override public long extractTimestamp(Long x, long previous) { return x / 10; }
    }

    public static final class SumSecond implements ReduceFunction<Tuple2<Long, Long>> {
        @Override public Tuple2<Long, Long> reduce(Tuple2<Long, Long> a, Tuple2<Long, Long> b) {
            return Tuple2.of(a.f0, a.f1 + b.f1);
        }
    }

    public static final class FirstField implements KeySelector<Tuple2<Long, Long>, Long> {
        @Override public Long getKey(Tuple2<Long, Long> pair) { return pair.f0; }
    }

    /** Passes records on, counting them where the emitting side can see it. */
    public static final class CountEmitted implements MapFunction<Long, Long> {
        @Override public Long map(Long x) { EMITTED.incrementAndGet(); return x; }
    }

    /** A call answering with its input ASYNC_DELAY_MICROS after it starts. */
    public static final class DelayedEcho extends RichAsyncFunction<Long, Long> {
        private static ScheduledExecutorService timer;

        private static synchronized ScheduledExecutorService timer() {
            if (timer == null) {
                timer = Executors.newScheduledThreadPool(2, r -> {
                    Thread t = new Thread(r, "delayed-echo");
                    t.setDaemon(true);
                    return t;
                });
            }
            return timer;
        }

        @Override
        public void asyncInvoke(Long x, ResultFuture<Long> result) {
            CompletableFuture<Long> reply = new CompletableFuture<>();
            timer().schedule(() -> reply.complete(x), ASYNC_DELAY_MICROS, TimeUnit.MICROSECONDS);
            reply.thenAccept(v -> result.complete(List.of(v)));
        }
    }

    /** Counts what it receives; adds its count to SUNK when it closes. */
    public static final class CountingSink<T> implements Sink<T> {
        @Override
        public SinkWriter<T> createWriter(WriterInitContext context) {
            return new SinkWriter<T>() {
                private long count;
                @Override public void write(T record, Context context) { count++; }
                @Override public void flush(boolean endOfInput) { }
                @Override public void close() { SUNK.addAndGet(count); }
            };
        }
    }

    /** Counts the windows it receives into SUNK and adds up their counts into WINDOW_COUNTS. */
    public static final class WindowCountSink implements Sink<Tuple2<Long, Long>> {
        @Override
        public SinkWriter<Tuple2<Long, Long>> createWriter(WriterInitContext context) {
            return new SinkWriter<Tuple2<Long, Long>>() {
                private long windows, records;
                @Override public void write(Tuple2<Long, Long> window, Context context) {
                    windows++;
                    records += window.f1;
                }
                @Override public void flush(boolean endOfInput) { }
                @Override public void close() { SUNK.addAndGet(windows); WINDOW_COUNTS.addAndGet(records); }
            };
        }
    }

    /** Busy-waits to write at most `perSecond` records a second; counts each into SUNK live. */
    public static final class PacedSink implements Sink<Long> {
        private final long perSecond;

        PacedSink(long perSecond) { this.perSecond = perSecond; }

        @Override
        public SinkWriter<Long> createWriter(WriterInitContext context) {
            long interval = 1_000_000_000L / perSecond;
            return new SinkWriter<Long>() {
                private long due;
                @Override public void write(Long record, Context context) {
                    long now = System.nanoTime();
                    due = (due == 0 ? now : due) + interval;
                    while (System.nanoTime() < due) {
                        Thread.onSpinWait();
                    }
                    SUNK.incrementAndGet();
                }
                @Override public void flush(boolean endOfInput) { }
                @Override public void close() { }
            };
        }
    }

    // ------------------------------------------------------------------ helpers

    static long or(Long value, long fallback) { return value == null ? fallback : value; }

    static double seconds(JobExecutionResult result) {
        return result.getNetRuntime(TimeUnit.MILLISECONDS) / 1000.0;
    }

    static String line(String job, long n, JobExecutionResult result, String extra) {
        double s = seconds(result);
        return String.format(Locale.ROOT, "flink %s records=%d seconds=%.3f rate=%.0f sink=%d%s",
                job, n, s, n / s, SUNK.get(), extra);
    }

    static void expect(String job, long expected) {
        long got = SUNK.get();
        if (got != expected) {
            System.err.println("PeerJobs: " + job + ": the sink counted " + got + " records, expected " + expected);
            System.exit(1);
        }
    }

    /** This process's resident set size (VmRSS) in KiB, -1 if unreadable. */
    static long rssKib() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmRSS:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException ignored) {
            // Not Linux: the field reads -1.
        }
        return -1;
    }
}
