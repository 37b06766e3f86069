// Timing assertions share two cores with the daemon under test: run the classes one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
