// Types of jobwire.js, written by hand. The interfaces JobEvent, Snapshot
// and JobError mirror the JSON Schemas in shared/jobs/schema
// (event.schema.json, snapshot.schema.json): TestJobwireTypesMatchSchemas
// fails when a property is missing here, extra, or of another type.

/** An RFC 3339 time in UTC, e.g. "2026-12-02T13:01:02.5Z". */
export type Time = string;

/** What happened: an event's kind. */
export type Kind = "scheduled" | "queued" | "started" | "progress" | "log" | "retrying" | "succeeded" | "failed" | "canceled";

/** The state a job is in. */
export type Status = "scheduled" | "queued" | "running" | "succeeded" | "failed" | "canceled";

/** A machine-readable code and a human message. */
export interface JobError {
  code: string;
  message: string;
}

/** One event of a job, with the job's full snapshot (event.schema.json). */
export interface JobEvent {
  job_id: string;
  type?: string;
  owner?: string;
  retry_of?: string;
  schedule_id?: string;
  seq: number;
  kind: Kind;
  status: Status;
  priority?: number;
  percent?: number;
  current?: number;
  total?: number;
  stage?: string;
  message?: string;
  log?: string;
  attempt?: number;
  time: Time;
  created_at?: Time;
  started_at?: Time;
  ended_at?: Time;
  run_at?: Time;
  expires_at?: Time;
  next_attempt_at?: Time;
  result?: unknown;
  error?: JobError;
  input?: unknown;
}

/** A job's state in HTTP answers (snapshot.schema.json). */
export interface Snapshot {
  id: string;
  type?: string;
  retry_of?: string;
  retried_as?: string;
  schedule_id?: string;
  priority?: number;
  status: Status;
  seq: number;
  percent?: number;
  current?: number;
  total?: number;
  stage?: string;
  message?: string;
  attempt?: number;
  created_at?: Time;
  started_at?: Time;
  ended_at?: Time;
  run_at?: Time;
  expires_at?: Time;
  updated_at: Time;
  duration_ms?: number;
  next_attempt_at?: Time;
  result?: unknown;
  error?: JobError;
  input?: unknown;
}

/** A refused request or watch: the HTTP status (0 for a watch) and the API's error code. */
export declare class JobwireError extends Error {
  readonly status: number;
  /** e.g. not_found, expired, invalid_id, unauthenticated, rate_limited, invalid_input */
  readonly code: string;
  /** The error answer's body, when it was JSON. */
  readonly body: unknown;
}

/**
 * Where a watch is: connecting (first time), live (events flow),
 * reconnecting (the connection was lost; it resumes by itself), ended (the
 * job's final event was delivered), not_found, expired (the job ended and
 * its records aged out), error (a final error, see onError), closed (the
 * caller unwatched).
 */
export type WatchState = "connecting" | "live" | "reconnecting" | "ended" | "not_found" | "expired" | "error" | "closed";

export interface WatchOptions {
  /** Deliver the events after this seq (0: the whole stored history). Without it: the current state, then live events. */
  afterSeq?: number;
  /** Each event, once, in seq order. truncated: events between the last one delivered and this one have aged out; this is the current state. */
  onEvent?(event: JobEvent, info: { truncated: boolean }): void;
  /** The job's final event (after its onEvent). */
  onEnd?(event: JobEvent): void;
  /** A refused watch (not_found, expired, invalid_id, forbidden, …); final ones end the watch. */
  onError?(error: JobwireError): void;
  onState?(state: WatchState): void;
}

export interface ConnectOptions {
  /** The gateway's base URL; default: the origin this module was loaded from. */
  url?: string;
  /** A bearer token (JWT); without it the gateway's session cookie is used, on its own origin only. */
  token?: string;
  /** "auto" (default): WebSocket, SSE where WebSockets never connect; or force one. */
  transport?: "auto" | "websocket" | "sse";
}

export interface SubmitOptions {
  /** Sent as Idempotency-Key: a retried submit returns the same job. */
  idempotencyKey?: string;
  run_at?: string;
  delay?: string;
  expires_at?: string;
  priority?: 1 | 2 | 3;
}

export declare class Connection {
  readonly url: string;
  /** Follow a job; returns the function that stops following it. */
  watch(id: string, options?: WatchOptions): () => void;
  submit(type: string, input?: unknown, options?: SubmitOptions): Promise<Snapshot>;
  cancel(id: string, reason?: string): Promise<Snapshot>;
  get(id: string): Promise<Snapshot>;
  /** Stop every watch and close the socket. */
  close(): void;
}

export declare function connect(options?: ConnectOptions): Connection;

/** The page's one connection for url and token, shared by every <jobwire-progress> with them. */
export declare function sharedConnection(url?: string, token?: string): Connection;

/**
 * <jobwire-progress job-id="…" url="…" token="…" log="20" label="…">:
 * fires "jobwire-event" (detail: {event, truncated}) and "jobwire-state"
 * (detail: {state}).
 */
export declare class JobwireProgress extends HTMLElement {
  jobId: string;
  /** The connection it watches through (default: sharedConnection(url, token)). */
  connection: Connection;
  /** The last event shown. */
  readonly event: JobEvent | null;
}

declare global {
  interface HTMLElementTagNameMap {
    "jobwire-progress": JobwireProgress;
  }
}

declare const jobwire: {
  connect: typeof connect;
  sharedConnection: typeof sharedConnection;
  Connection: typeof Connection;
  JobwireError: typeof JobwireError;
};
export default jobwire;
