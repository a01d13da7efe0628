// Package jobs is jobwire's public contract: the NATS subjects, stream and
// bucket names, job ids, and the JSON shapes of job requests and progress
// events. The gateway, the runners and any third-party service use it; no
// one else builds a subject by hand.
//
// Subjects:
//
//	jobs.<id>.progress      every event of job <id> (JSON Event), live, once stored
//	jobwire.events.<id>     where those events are written and kept: stream JOBS_EVENTS,
//	                        which republishes each stored event on jobs.<id>.progress
//	jobs.<id>.cancel        cancel requests for job <id> (core NATS)
//	jobwire.queue.<type>    job requests (JSON Request), stored in work-queue stream JOBS
//
// The queue and event subjects live under a different first token than
// jobs.*.progress so that no stream and no wildcard subscription can ever
// overlap them. Nobody publishes on jobs.<id>.progress but the stream, so
// its subscribers see exactly the stored events: a fenced write that lost
// (PublishEvent) never reaches them.
package jobs
