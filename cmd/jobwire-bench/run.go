package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// run is the whole tool; main only adds signals. It returns an error when
// a phase failed, after printing the table.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "jobwire-bench: "+format+"\n", a...)
		}
	}
	// Watchers need many descriptors, here and in the gateway, which
	// inherits this limit.
	raiseFileLimit()
	rep := &report{Machine: describeMachine(), Settings: settingsOf(cfg, args)}

	if !cfg.external() && cfg.GatewayBin == "" {
		logf("building ./services/gateway")
	}
	l, err := newLauncher(ctx, cfg, logf)
	if err != nil {
		return err
	}
	defer l.close()

	for _, phase := range cfg.Phases {
		if ctx.Err() != nil {
			rep.Failures = append(rep.Failures, phase+": interrupted")
			continue
		}
		err := runPhase(ctx, cfg, l, rep, phase, logf)
		var skip errSkipped
		switch {
		case errors.As(err, &skip):
			rep.Skipped = append(rep.Skipped, skip.Error())
		case err != nil:
			logf("%s failed: %v", phase, err)
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", phase, err))
		}
	}

	rep.OK = len(rep.Failures) == 0
	rep.build()
	rep.markdown(stdout)
	if cfg.JSONPath != "" {
		if err := rep.writeJSON(cfg.JSONPath); err != nil {
			return fmt.Errorf("write %s: %w", cfg.JSONPath, err)
		}
	}
	if !rep.OK {
		return fmt.Errorf("%d of %d phases failed", len(rep.Failures), len(cfg.Phases))
	}
	return nil
}

// phaseBudget bounds a whole phase, whatever its own waits do.
func phaseBudget(cfg config, phase string) time.Duration {
	d := 3*cfg.PhaseTimeout + 8*(cfg.Warmup+cfg.Duration+cfg.Settle) + 2*time.Minute
	if phase == phaseIndex {
		// Seeding and indexing, then four runner runs.
		d += 2*cfg.IndexTimeout + 4*cfg.PhaseTimeout
	}
	return d
}

// runPhase runs one measurement on its own system and stores its result.
func runPhase(ctx context.Context, cfg config, l *launcher, rep *report, phase string, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, phaseBudget(cfg, phase))
	defer cancel()
	switch phase {
	case phaseMemory:
		var err error
		rep.Memory, err = measureMemory(ctx, cfg, l, logf)
		return err
	case phaseIndex:
		var err error
		rep.Index, err = measureIndex(ctx, cfg, l, logf)
		return err
	}
	sys, release, err := l.system(ctx)
	if err != nil {
		return err
	}
	defer release()
	if rep.Machine.NATSServer == "" {
		if nc, err := connect(sys.NATSURL, "jobwire-bench", nil); err == nil {
			rep.Machine.NATSServer = nc.ConnectedServerVersion()
			nc.Close()
		}
	}
	prof := &profiler{dir: cfg.PerfDir, pid: sys.PID, log: logf}
	switch phase {
	case phaseSubmit:
		rep.Submit, err = measureSubmit(ctx, cfg, sys, prof, logf)
	case phaseRunner:
		rep.Runner, err = measureRunner(ctx, cfg, sys, prof, logf)
	case phaseWatch:
		rep.Watch, err = measureWatch(ctx, cfg, sys, prof, logf)
	case phaseFanout:
		rep.Fanout, err = measureFanout(ctx, cfg, sys, prof, logf)
	}
	if err == nil && !sys.alive() {
		err = fmt.Errorf("the gateway exited during the phase%s", sys.logTail())
	}
	return err
}
