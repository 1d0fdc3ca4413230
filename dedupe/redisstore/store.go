package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/internal/config"
)

// DefaultPrefix is the default of Config.Prefix.
const DefaultPrefix = "eos:dedupe:"

// Config configures a Store. WithDefaults applies the defaults (New does).
type Config struct {
	// Dedupe is what every dedupe backend takes: retention, result bound
	// and the clock.
	Dedupe dedupe.Config
	// Prefix begins every key the store writes, so that stores (and
	// tests) sharing a server stay apart. Default DefaultPrefix; at most
	// 128 printable ASCII characters.
	Prefix string
	// Logger receives the start-up warning about eviction. Default
	// slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	var err error
	if c.Dedupe, err = c.Dedupe.WithDefaults(); err != nil {
		return c, err
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if len(c.Prefix) > 128 {
		return c, &eos.ConfigError{Field: "redisstore.Config.Prefix", Reason: fmt.Sprintf("%d bytes, more than 128", len(c.Prefix))}
	}
	for _, r := range c.Prefix {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return c, &eos.ConfigError{Field: "redisstore.Config.Prefix", Reason: fmt.Sprintf("%q is not printable ASCII", r)}
		}
	}
	c.Logger = config.Logger(c.Logger)
	return c, nil
}

// Store is the dedupe.Store on Redis.
type Store struct {
	c   redis.UniversalClient
	cfg Config
}

var _ dedupe.Store = (*Store)(nil)

// New returns the store on c, which stays the caller's to close. It reads
// the server's maxmemory-policy and logs a warning unless it is
// noeviction (see the package documentation); it fails only on an
// invalid cfg, so a server that is down now fails the first call instead.
func New(ctx context.Context, c redis.UniversalClient, cfg Config) (*Store, error) {
	if c == nil {
		return nil, &eos.ConfigError{Field: "redisstore.New client", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	policy, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	warnEviction(ctx, cfg.Logger, policy["maxmemory-policy"], err)
	return &Store{c: c, cfg: cfg}, nil
}

// warnEviction logs why records may be lost, if they may: the policy got
// (or the error of CONFIG GET).
func warnEviction(ctx context.Context, log *slog.Logger, policy string, err error) {
	switch {
	case err != nil:
		log.WarnContext(ctx, "eos dedupe: could not read Redis's maxmemory-policy; unless it is noeviction, evicted records let a key be claimed twice",
			"error", err)
	case policy == "":
		log.WarnContext(ctx, "eos dedupe: Redis did not report its maxmemory-policy; unless it is noeviction, evicted records let a key be claimed twice")
	case policy != "noeviction":
		log.WarnContext(ctx, "eos dedupe: Redis's maxmemory-policy is not noeviction: evicted records let a key be claimed twice",
			"maxmemory_policy", policy)
	}
}

// key is the record's key: the prefix, the scope's length, the scope and
// the key, which no other pair shares.
func (s *Store) key(scope, key string) string {
	return s.cfg.Prefix + strconv.Itoa(len(scope)) + ":" + scope + key
}

// now reads the clock at the precision records keep (microseconds).
func (s *Store) now() time.Time { return s.cfg.Dedupe.Test.Now().UTC().Truncate(time.Microsecond) }

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// ttl is the server TTL of a record written at now that expires at exp,
// in whole milliseconds (rounded up: never before exp).
func ttl(now, exp time.Time) string {
	d := exp.Sub(now)
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(max(int64(ms), 1), 10)
}

// fence is the check that opens complete, release and renew: the record
// is leased to ARGV[1] (token) and ARGV[2] (generation) and not past its
// expiry at ARGV[3] (now); r holds its fields st, tok, gen, exp, lexp.
const fence = `local r = redis.call('HMGET', KEYS[1], 'st', 'tok', 'gen', 'exp', 'lexp')
local now = tonumber(ARGV[3])
if r[1] ~= 'leased' or r[2] ~= ARGV[1] or tonumber(r[3]) ~= tonumber(ARGV[2]) or tonumber(r[4]) <= now then return 0 end
`

// The scripts. Times are unix microseconds; a record's fields: st (state),
// fp, tok, gen, lexp (lease end), exp (expiry), res, cat (completed at).
var (
	// claim: ARGV now, fingerprint, token, lease end, expiry, TTL (ms).
	claimScript = redis.NewScript(`local now = tonumber(ARGV[1])
local r = redis.call('HMGET', KEYS[1], 'st', 'fp', 'gen', 'lexp', 'exp', 'res', 'cat')
local gen = 0
if r[1] then
  gen = tonumber(r[3])
  if tonumber(r[5]) > now then
    if r[2] ~= ARGV[2] then return {'mismatch'} end
    if r[1] == 'completed' then return {'completed', r[6], r[7]} end
    if r[1] == 'leased' and tonumber(r[4]) > now then return {'leased', r[4]} end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', 'leased', 'fp', ARGV[2], 'tok', ARGV[3], 'gen', gen + 1, 'lexp', ARGV[4], 'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {'claimed', gen + 1}`)
	// complete: ARGV token, generation, now, result, expiry, TTL (ms).
	completeScript = redis.NewScript(fence + `redis.call('HSET', KEYS[1], 'st', 'completed', 'tok', '', 'res', ARGV[4], 'cat', ARGV[3], 'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1`)
	// release: ARGV token, generation, now, expiry, TTL (ms).
	releaseScript = redis.NewScript(fence + `redis.call('HSET', KEYS[1], 'st', 'released', 'tok', '', 'exp', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`)
	// renew: ARGV token, generation, now, lease end, expiry, TTL (ms).
	renewScript = redis.NewScript(fence + `if tonumber(r[5]) <= now then return 0 end
redis.call('HSET', KEYS[1], 'lexp', ARGV[4], 'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1`)
)

// Claim implements dedupe.Store.
func (s *Store) Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (dedupe.Claim, error) {
	if err := dedupe.Check(scope, key, fingerprint, lease); err != nil {
		return dedupe.Claim{}, err
	}
	now := s.now()
	end := now.Add(lease)
	exp := s.cfg.Dedupe.RecordExpiry(now, end)
	token := dedupe.NewToken()
	reply, err := claimScript.Run(ctx, s.c, []string{s.key(scope, key)},
		micros(now), fingerprint, token, micros(end), micros(exp), ttl(now, exp)).Slice()
	if err != nil {
		return dedupe.Claim{}, &eos.StoreError{Op: "dedupe.claim", Err: err}
	}
	c, err := parseClaim(reply, now)
	if err != nil {
		return dedupe.Claim{}, &eos.StoreError{Op: "dedupe.claim", Err: err}
	}
	if c.Status == dedupe.Claimed {
		c.Lease = dedupe.Lease{Scope: scope, Key: key, Token: token, Generation: c.Lease.Generation, Expires: end}
	}
	return c, nil
}

// parseClaim reads the claim script's reply.
func parseClaim(reply []any, now time.Time) (dedupe.Claim, error) {
	str := func(i int) (string, error) {
		if i >= len(reply) {
			return "", fmt.Errorf("claim script: reply %q is short", reply)
		}
		s, ok := reply[i].(string)
		if !ok {
			return "", fmt.Errorf("claim script: reply field %d is a %T", i, reply[i])
		}
		return s, nil
	}
	micro := func(i int) (time.Time, error) {
		s, err := str(i)
		if err != nil {
			return time.Time{}, err
		}
		v, err := strconv.ParseInt(s, 10, 64)
		return time.UnixMicro(v).UTC(), err
	}
	status, err := str(0)
	if err != nil {
		return dedupe.Claim{}, err
	}
	switch status {
	case "claimed":
		var gen int64
		ok := len(reply) >= 2
		if ok {
			gen, ok = reply[1].(int64)
		}
		if !ok {
			return dedupe.Claim{}, fmt.Errorf("claim script: reply %q has no generation", reply)
		}
		return dedupe.Claim{Status: dedupe.Claimed, Lease: dedupe.Lease{Generation: gen}}, nil
	case "mismatch":
		return dedupe.Claim{Status: dedupe.Mismatch}, nil
	case "completed":
		res, err := str(1)
		if err != nil {
			return dedupe.Claim{}, err
		}
		at, err := micro(2)
		return dedupe.Claim{Status: dedupe.Completed, Result: []byte(res), CompletedAt: at}, err
	case "leased":
		end, err := micro(1)
		return dedupe.Claim{Status: dedupe.InProgress, RetryAfter: dedupe.RetryAfter(now, end)}, err
	}
	return dedupe.Claim{}, fmt.Errorf("claim script: unknown status %q", status)
}

// Complete implements dedupe.Store.
func (s *Store) Complete(ctx context.Context, l dedupe.Lease, result []byte) error {
	if err := dedupe.CheckLease(l); err != nil {
		return err
	}
	if len(result) > s.cfg.Dedupe.MaxResultSize {
		return fmt.Errorf("%w: %d bytes, more than %d", dedupe.ErrResultTooLarge, len(result), s.cfg.Dedupe.MaxResultSize)
	}
	now := s.now()
	exp := s.cfg.Dedupe.RecordExpiry(now, time.Time{})
	return s.fenced(ctx, "dedupe.complete", completeScript, l, micros(now), result, micros(exp), ttl(now, exp))
}

// Release implements dedupe.Store.
func (s *Store) Release(ctx context.Context, l dedupe.Lease) error {
	if err := dedupe.CheckLease(l); err != nil {
		return err
	}
	now := s.now()
	exp := s.cfg.Dedupe.RecordExpiry(now, time.Time{})
	return s.fenced(ctx, "dedupe.release", releaseScript, l, micros(now), micros(exp), ttl(now, exp))
}

// Renew implements dedupe.Store.
func (s *Store) Renew(ctx context.Context, l dedupe.Lease, lease time.Duration) (dedupe.Lease, error) {
	if err := dedupe.CheckRenew(l, lease); err != nil {
		return dedupe.Lease{}, err
	}
	now := s.now()
	end := now.Add(lease)
	exp := s.cfg.Dedupe.RecordExpiry(now, end)
	if err := s.fenced(ctx, "dedupe.renew", renewScript, l, micros(now), micros(end), micros(exp), ttl(now, exp)); err != nil {
		return dedupe.Lease{}, err
	}
	l.Expires = end
	return l, nil
}

// fenced runs a fenced script for l with the arguments after token and
// generation (now first): 1 is done, 0 is dedupe.ErrFenced.
func (s *Store) fenced(ctx context.Context, op string, script *redis.Script, l dedupe.Lease, args ...any) error {
	n, err := script.Run(ctx, s.c, []string{s.key(l.Scope, l.Key)}, append([]any{l.Token, l.Generation}, args...)...).Int()
	switch {
	case err != nil:
		return &eos.StoreError{Op: op, Err: err}
	case n == 0:
		return dedupe.ErrFenced
	}
	return nil
}
