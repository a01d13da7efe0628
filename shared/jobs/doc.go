// Package jobs is jobwire's public contract: the NATS subjects, stream and
// bucket names, job ids, and the JSON shapes of job requests and progress
// events. The gateway, the runners and any third-party service use it; no
// one else builds a subject by hand.
//
// Subjects:
//
//	jobs.<id>.progress             every event of job <id> (JSON Event), live, once stored
//	jobwire.queue.<type>.<id>      job <id>'s request (JSON Request, also its "queued"
//	                               event, seq 1), stored once in stream JOBS
//	jobwire.events.<type>.<id>     the job's later events, stored in JOBS; the stream
//	                               republishes every stored message on jobs.<id>.progress
//	jobwire.ends.<id>              the job's end record (stream JOBS_RECORDS)
//	jobs.<id>.cancel               cancel requests for job <id> (core NATS)
//
// The queue and event subjects live under a different first token than
// jobs.*.progress so that no stream and no wildcard subscription can ever
// overlap them. Nobody publishes on jobs.<id>.progress but the stream, so
// its subscribers see exactly the stored events: a fenced write that lost
// (PublishEvent) never reaches them.
package jobs
