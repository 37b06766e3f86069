namespace AppHb.Core.Supervision;

/// <summary>The outcome of one run of an API check.</summary>
/// <param name="NotRunning">The check says the service is cleanly not running (OCF 7, LSB 3), not broken.</param>
public readonly record struct CheckOutcome(bool Passed, bool NotRunning, string Message, TimeSpan Duration);
