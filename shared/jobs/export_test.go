package jobs

// TraceHeader is traceHeader, for the allocation test.
var TraceHeader = traceHeader
