package jobops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
)

// Recurring schedules. A schedule is two messages in jobs.TimersStream: a
// JetStream message schedule (cron or @every, with its time zone) on
// jobs.CronSubject that the server fires into jobs.TickSubject, and its
// definition (owner, type, input, priority, paused) on
// jobs.ScheduleDefSubject. Each tick becomes a job whose id is made of the
// schedule's id and the tick's stream sequence, so a tick handled twice
// makes one job (the second Enqueue finds the id taken). Pausing removes
// the message schedule and keeps the definition; resuming stores the
// schedule again. Ticks missed while NATS was down come as one tick when it
// is back (the server fires a missed schedule once).

// ScheduleRequest is a schedule to create: the body of POST /api/schedules.
type ScheduleRequest struct {
	Type     string          `json:"type"`
	Input    json.RawMessage `json:"input,omitempty"`
	Cron     string          `json:"cron,omitempty"`  // 6 fields, seconds first, or @hourly, @daily …
	Every    string          `json:"every,omitempty"` // a duration of at least 1s, in whole seconds
	TimeZone string          `json:"time_zone,omitempty"`
	Priority int             `json:"priority,omitempty"`
	Paused   bool            `json:"paused,omitempty"`
}

// Schedule is a recurring schedule as its owner sees it.
type Schedule struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Input     json.RawMessage `json:"input,omitempty"`
	Cron      string          `json:"cron,omitempty"`
	Every     string          `json:"every,omitempty"`
	TimeZone  string          `json:"time_zone,omitempty"`
	Priority  int             `json:"priority,omitempty"`
	Paused    bool            `json:"paused"`
	CreatedAt time.Time       `json:"created_at"`
	// NextRunAt is when it fires next (absent while paused).
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
}

// scheduleDef is a schedule as stored: with its owner.
type scheduleDef struct {
	Schedule
	Owner string `json:"owner"`
}

// cronParser reads the cron expressions NATS message schedules take: six
// fields, seconds first, or a descriptor such as @daily.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// maxSchedulesListed is the most schedules one list returns (a direct
// get answers at most 1,024 messages).
const maxSchedulesListed = 1000

// scheduleSpec checks req's timing and returns the message schedule's
// header value and the time zone.
func scheduleSpec(req ScheduleRequest) (spec, zone string, err error) {
	switch {
	case (req.Cron == "") == (req.Every == ""):
		return "", "", &InvalidArgumentError{`give "cron" or "every", one of them`}
	case req.Every != "":
		d, err := time.ParseDuration(req.Every)
		if err != nil || d < time.Second || d%time.Second != 0 {
			return "", "", &InvalidArgumentError{fmt.Sprintf(`"every" must be a whole number of seconds, at least 1s, such as "30s" or "1h"; %q is not`, req.Every)}
		}
		if req.TimeZone != "" {
			return "", "", &InvalidArgumentError{`"time_zone" applies to "cron" only`}
		}
		return "@every " + d.String(), "", nil
	}
	if _, err := cronParser.Parse(req.Cron); err != nil || strings.HasPrefix(req.Cron, "@every") {
		why := "use \"every\" for intervals"
		if err != nil {
			why = err.Error()
		}
		return "", "", &InvalidArgumentError{fmt.Sprintf(`"cron" must have six fields, seconds first (such as "0 30 9 * * MON-FRI"), or be @hourly, @daily, @weekly, @monthly, @yearly: %s`, why)}
	}
	if req.TimeZone != "" {
		if _, err := time.LoadLocation(req.TimeZone); err != nil || req.TimeZone == "Local" {
			return "", "", &InvalidArgumentError{fmt.Sprintf(`"time_zone" must be an IANA time zone such as "Europe/Berlin"; %q is not`, req.TimeZone)}
		}
	}
	return req.Cron, req.TimeZone, nil
}

// nextRun is when def fires next after now (nil while paused).
func nextRun(def Schedule, now time.Time) *time.Time {
	if def.Paused {
		return nil
	}
	var next time.Time
	if def.Every != "" {
		d, err := time.ParseDuration(def.Every)
		if err != nil || d <= 0 {
			return nil
		}
		// The server fires @every d at whole seconds: created + k·d.
		start := def.CreatedAt.Truncate(time.Second)
		next = start.Add((now.Sub(start)/d + 1) * d)
	} else {
		sched, err := cronParser.Parse(def.Cron)
		if err != nil {
			return nil
		}
		loc := time.UTC
		if def.TimeZone != "" {
			if l, err := time.LoadLocation(def.TimeZone); err == nil {
				loc = l
			}
		}
		next = sched.Next(now.In(loc)).UTC()
	}
	return &next
}

// CreateSchedule checks req (type, input, timing) and stores a schedule
// owned by who.
func (s *Service) CreateSchedule(ctx context.Context, who Caller, req ScheduleRequest) (Schedule, error) {
	if _, err := s.check(ctx, SubmitRequest{Type: req.Type, Input: req.Input}); err != nil {
		return Schedule{}, err
	}
	if req.Priority != 0 && (req.Priority < jobs.PriorityHigh || req.Priority > jobs.PriorityLow) {
		return Schedule{}, &InvalidArgumentError{fmt.Sprintf(`"priority" must be 1 (high), 2 (normal) or 3 (low); %d is not`, req.Priority)}
	}
	if _, _, err := scheduleSpec(req); err != nil {
		return Schedule{}, err
	}
	now := time.Now().UTC()
	def := scheduleDef{Owner: who.Owner, Schedule: Schedule{
		ID: jobs.NewID(now), Type: req.Type, Input: req.Input, Cron: req.Cron, Every: req.Every, TimeZone: req.TimeZone,
		Priority: req.Priority, Paused: req.Paused, CreatedAt: now,
	}}
	if !def.Paused {
		if err := s.armSchedule(ctx, def); err != nil {
			return Schedule{}, err
		}
	}
	if err := s.storeScheduleDef(ctx, def); err != nil {
		return Schedule{}, unavailable(err)
	}
	return shown(def), nil
}

// armSchedule stores def's message schedule. The server checks it again
// (its cron dialect, its time zones): a refusal is the caller's mistake.
func (s *Service) armSchedule(ctx context.Context, def scheduleDef) error {
	spec, zone, err := scheduleSpec(ScheduleRequest{Cron: def.Cron, Every: def.Every, TimeZone: def.TimeZone})
	if err != nil {
		return err
	}
	payload, _ := json.Marshal(struct {
		ScheduleID string `json:"schedule_id"`
	}{def.ID})
	_, err = s.js.PublishMsg(ctx, jobs.RepeatTimerMsg(jobs.CronSubject(def.ID), jobs.TickSubject(def.ID), spec, zone, payload))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 {
		return &InvalidArgumentError{"the schedule was refused: " + apiErr.Description}
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// storeScheduleDef stores def in place of its earlier versions.
func (s *Service) storeScheduleDef(ctx context.Context, def scheduleDef) error {
	m := nats.NewMsg(jobs.ScheduleDefSubject(def.Owner, def.ID))
	m.Data, _ = json.Marshal(def)
	m.Header.Set("Nats-TTL", "never")
	m.Header.Set("Nats-Rollup", "sub")
	_, err := s.js.PublishMsg(ctx, m)
	return err
}

// shown is def as its owner sees it.
func shown(def scheduleDef) Schedule {
	sc := def.Schedule
	sc.NextRunAt = nextRun(sc, time.Now())
	return sc
}

// readScheduleDef reads schedule id's definition; ErrScheduleNotFound if
// there is none, or who may not see it.
func (s *Service) readScheduleDef(ctx context.Context, who *Caller, id string) (scheduleDef, error) {
	if jobs.ValidateID(id) != nil {
		return scheduleDef{}, ErrScheduleNotFound
	}
	var def scheduleDef
	found := false
	err := jobs.MultiLast(ctx, s.nc, jobs.TimersStream, []string{jobs.ScheduleDefsOf(id)}, func(m jobs.StoredEvent) {
		found = json.Unmarshal(m.Data, &def) == nil && def.ID == id
	})
	switch {
	case err != nil:
		return scheduleDef{}, unavailable(err)
	case !found || who != nil && !who.CanSee(def.Owner):
		return scheduleDef{}, ErrScheduleNotFound
	}
	return def, nil
}

// GetSchedule is schedule id, if who may see it.
func (s *Service) GetSchedule(ctx context.Context, who Caller, id string) (Schedule, error) {
	def, err := s.readScheduleDef(ctx, &who, id)
	if err != nil {
		return Schedule{}, err
	}
	return shown(def), nil
}

// ListSchedules lists who's schedules (an admin's: everyone's), oldest
// first, at most maxSchedulesListed.
func (s *Service) ListSchedules(ctx context.Context, who Caller) ([]Schedule, error) {
	filter := jobs.ScheduleDefFilter(who.Owner)
	if who.Admin {
		filter = jobs.ScheduleDefFilter("")
	}
	list := []Schedule{}
	err := jobs.MultiLast(ctx, s.nc, jobs.TimersStream, []string{filter}, func(m jobs.StoredEvent) {
		var def scheduleDef
		if json.Unmarshal(m.Data, &def) == nil && who.CanSee(def.Owner) && len(list) < maxSchedulesListed {
			list = append(list, shown(def))
		}
	})
	if err != nil {
		return nil, unavailable(err)
	}
	slices.SortFunc(list, func(a, b Schedule) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

// PauseSchedule stops schedule id's firings (paused: true) or starts
// them again (false).
func (s *Service) PauseSchedule(ctx context.Context, who Caller, id string, paused bool) (Schedule, error) {
	def, err := s.readScheduleDef(ctx, &who, id)
	if err != nil {
		return Schedule{}, err
	}
	if def.Paused == paused {
		return shown(def), nil
	}
	if paused {
		if err := s.disarmSchedule(ctx, id); err != nil {
			return Schedule{}, unavailable(err)
		}
	} else if err := s.armSchedule(ctx, def); err != nil {
		return Schedule{}, err
	}
	def.Paused = paused
	if err := s.storeScheduleDef(ctx, def); err != nil {
		return Schedule{}, unavailable(err)
	}
	return shown(def), nil
}

// DeleteSchedule removes schedule id: no more firings, no definition.
// Jobs it made stay.
func (s *Service) DeleteSchedule(ctx context.Context, who Caller, id string) error {
	def, err := s.readScheduleDef(ctx, &who, id)
	if err != nil {
		return err
	}
	if err := s.disarmSchedule(ctx, id); err != nil {
		return unavailable(err)
	}
	if err := s.streams.Timers.Purge(ctx, jetstream.WithPurgeSubject(jobs.ScheduleDefSubject(def.Owner, id))); err != nil {
		return unavailable(err)
	}
	return nil
}

// disarmSchedule removes schedule id's message schedule. (A purge: a plain
// message in its place would not hold across a server crash.)
func (s *Service) disarmSchedule(ctx context.Context, id string) error {
	return s.streams.Timers.Purge(ctx, jetstream.WithPurgeSubject(jobs.CronSubject(id)))
}

// tick makes the job of one firing of schedule id: its id is the
// schedule's and the tick's stream sequence, so a tick handled twice makes
// one job.
func (s *Service) tick(ctx context.Context, id string, m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return err
	}
	def, err := s.readScheduleDef(ctx, nil, id)
	if errors.Is(err, ErrScheduleNotFound) {
		return s.disarmSchedule(ctx, id) // deleted (or its creation failed half-way): no more ticks
	}
	if err != nil || def.Paused {
		return err // a tick that fired just before a pause makes no job
	}
	req := jobs.Request{
		ID: id + "-" + strconv.FormatUint(meta.Sequence.Stream, 36), Type: def.Type, Input: def.Input, CreatedAt: meta.Timestamp.UTC(),
		Owner: def.Owner, Priority: def.Priority, ScheduleID: id,
	}
	if _, err := jobs.Enqueue(ctx, s.js, req); err != nil && !errors.Is(err, jobs.ErrDuplicateID) {
		return err
	}
	return nil
}
