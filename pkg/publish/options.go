package publish

import (
	"errors"
	"fmt"
	"time"
)

// ErrOption marks an option value [New] refuses; the message names the option.
var ErrOption = errors.New("publish: bad option")

// Option configures a [Publisher]. Each option is its own type and checks
// its value, so a mistake shows at New, not at the first outage.
type Option interface {
	apply(*config) error
}

// Defaults of the options.
const (
	DefaultMaxPending   = 4096
	DefaultAckTimeout   = 5 * time.Second
	DefaultMaxRetries   = 5
	DefaultRetryBackoff = 100 * time.Millisecond
	// maxBackoffStep caps the doubling backoff of one retry.
	maxBackoffStep = 5 * time.Second
)

type config struct {
	maxPending int
	ackTimeout time.Duration
	maxRetries int
	backoff    time.Duration
	now        func() time.Time
}

func defaults() config {
	return config{
		maxPending: DefaultMaxPending,
		ackTimeout: DefaultAckTimeout,
		maxRetries: DefaultMaxRetries,
		backoff:    DefaultRetryBackoff,
		now:        time.Now,
	}
}

// MaxPending bounds the events published but not yet acknowledged (default
// 4096). When it is reached, Publish and PublishAsync wait for a slot: the
// producer slows down instead of buffering without limit. Must be >= 1.
type MaxPending int

func (o MaxPending) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("%w: MaxPending must be at least 1, got %d", ErrOption, int(o))
	}
	c.maxPending = int(o)
	return nil
}

// AckTimeout is how long one attempt waits for the stream's ack before it
// counts as failed and is retried (default 5s). Must be > 0.
type AckTimeout time.Duration

func (o AckTimeout) apply(c *config) error {
	return setPositive(&c.ackTimeout, "AckTimeout", time.Duration(o))
}

// MaxRetries is how many times a transient failure (no responders, ack
// timeout, disconnect) is retried after the first attempt (default 5; 0
// disables retries). Must be >= 0.
type MaxRetries int

func (o MaxRetries) apply(c *config) error {
	if o < 0 {
		return fmt.Errorf("%w: MaxRetries must not be negative, got %d", ErrOption, int(o))
	}
	c.maxRetries = int(o)
	return nil
}

// RetryBackoff is the wait before the first retry (default 100ms); it
// doubles per retry up to 5s per step, with up to 25% jitter so that many
// producers do not retry in lockstep after an outage. Must be > 0.
type RetryBackoff time.Duration

func (o RetryBackoff) apply(c *config) error {
	return setPositive(&c.backoff, "RetryBackoff", time.Duration(o))
}

// setPositive sets a wait option, name, to d: no wait of the publisher
// means anything at zero or below.
func setPositive(dst *time.Duration, name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%w: %s must be positive, got %s", ErrOption, name, d)
	}
	*dst = d
	return nil
}

// Now is the clock for validation's future-time rule (default time.Now).
// Must not be nil.
type Now func() time.Time

func (o Now) apply(c *config) error {
	if o == nil {
		return fmt.Errorf("%w: Now must not be nil", ErrOption)
	}
	c.now = o
	return nil
}
