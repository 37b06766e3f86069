using AppHb.Core.Scheduling;

namespace AppHb.Core.Tests;

public class SchedulingTests
{
    [Fact]
    public void Deadline_queue_releases_only_due_entries_in_deadline_order()
    {
        var queue = new DeadlineQueue<string>();
        queue.Schedule("c", 0, 30);
        queue.Schedule("a", 0, 10);
        queue.Schedule("b", 0, 20);
        Assert.Equal(10, queue.NextDue);
        var released = new List<string>();
        while (queue.TryDequeueDue(20, out var item, out _, out _))
        {
            released.Add(item);
        }

        Assert.Equal(["a", "b"], released);
        Assert.Equal(30, queue.NextDue);
    }

    [Fact]
    public void Lateness_percentiles_are_the_nearest_rank_values_of_the_sorted_window_whatever_the_samples()
    {
        var random = new Random(2741);
        foreach (var length in new[] { 1, 2, 3, 7, 100, 4096 })
        {
            for (var round = 0; round < 20; round++)
            {
                var recorder = new LatenessRecorder(capacity: length);
                // Duplicates and ties on purpose: the selection's partitioning must still land on the right rank.
                var samples = Enumerable.Range(0, length).Select(_ => random.Next(0, round % 2 == 0 ? 5 : 1000) / 10.0).ToArray();
                foreach (var ms in samples)
                {
                    recorder.Record(TimeSpan.FromMilliseconds(ms));
                }

                var sorted = samples.Select(ms => TimeSpan.FromMilliseconds(ms).TotalMilliseconds).Order().ToArray();
                var summary = recorder.Summarize();
                Assert.Equal(sorted[Math.Clamp((int)Math.Ceiling(0.50 * length) - 1, 0, length - 1)], summary.P50Ms);
                Assert.Equal(sorted[Math.Clamp((int)Math.Ceiling(0.99 * length) - 1, 0, length - 1)], summary.P99Ms);
            }
        }
    }

    [Fact]
    public void Lateness_recorder_reports_percentiles_over_the_window_and_max_since_start()
    {
        var recorder = new LatenessRecorder(capacity: 100);
        recorder.Record(TimeSpan.FromMilliseconds(50));
        for (var i = 1; i <= 100; i++)
        {
            recorder.Record(TimeSpan.FromMilliseconds(i / 100.0));
        }

        var summary = recorder.Summarize();
        Assert.Equal(101, summary.Count);
        Assert.Equal(0.5, summary.P50Ms, 3);
        Assert.Equal(0.99, summary.P99Ms, 3);
        Assert.Equal(50, summary.MaxMs);
    }
}
