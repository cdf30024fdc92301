package stream

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The NATS users, one per component. Each service connects with its own
// (JOURNEY_NATS_USER and a password), and the server allows it exactly the
// subjects its work needs (see [AccessNames.Permissions]).
const (
	UserCollector = "collector"
	UserSimulator = "simulator"
	UserWriter    = "writer"
	UserProjector = "projector"
	UserAPI       = "api"
	// UserAdmin is ops tooling (journeyctl, the local stack's setup): it
	// creates and updates the streams, purges and redrives; everything is
	// allowed to it.
	UserAdmin = "admin"
)

// Users lists every user of [AccessNames.Permissions], in a fixed order.
func Users() []string {
	return []string{UserCollector, UserSimulator, UserWriter, UserProjector, UserAPI, UserAdmin}
}

// AccessNames are the names permissions are written for: the durable
// consumers, buckets and streams the services are configured with. The
// permissions of a service hold only for these names, so a service with a
// non-default name needs permissions generated for it.
type AccessNames struct {
	// Partitions of the touchpoint stream (JOURNEY_STREAM_PARTITIONS): the
	// projector has one durable consumer per partition.
	Partitions int
	// WriterConsumer is JOURNEY_WRITER_CONSUMER (default writer).
	WriterConsumer string
	// WriterFenceBucket is the KV bucket in which writers take turns per
	// table (writer.FenceBucket, JOURNEY_WRITER_FENCE).
	WriterFenceBucket string
	// ProjectorDurable is JOURNEY_PROJECTOR_DURABLE (default
	// journey-projector); its consumers are <durable>-p<N> and
	// <durable>-warehouse.
	ProjectorDurable string
	// StateBucket and IndexBucket are JOURNEY_PROJECTOR_BUCKET and
	// JOURNEY_PROJECTOR_INDEX_BUCKET.
	StateBucket string
	IndexBucket string
	// OutboxStream is JOURNEY_PROJECTOR_OUTBOX_STREAM.
	OutboxStream string
	// AccountsBucket is JOURNEY_PROJECTOR_ACCOUNTS_BUCKET (empty: the
	// default journey_accounts).
	AccountsBucket string
}

// DefaultAccessNames are the services' defaults.
func DefaultAccessNames() AccessNames {
	return AccessNames{Partitions: 8, WriterConsumer: "writer", WriterFenceBucket: "JOURNEY_WRITER_FENCE", ProjectorDurable: "journey-projector",
		StateBucket: "journey_customers", IndexBucket: "journey_expiry", OutboxStream: "PROJECTOR_OUTBOX",
		AccountsBucket: "journey_accounts"}
}

// ErrAccess marks unusable access settings.
var ErrAccess = errors.New("stream: bad access settings")

// Permissions is what one user may publish and subscribe to.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// ProjectorOutboxSubject is the subject of the projector's outbox stream.
func ProjectorOutboxSubject(outboxStream string) string {
	return "journey.projector.outbox." + outboxStream
}

// InboxPrefix is the reply-subject prefix of a user's connection: each
// user gets its own, so that no service can subscribe to the replies
// another receives (a projector's state reads, say).
func InboxPrefix(user string) string { return "_INBOX." + user }

// Permissions returns every user's allow-lists. They follow from the code:
//
//   - collector and simulator publish touchpoints (touchpoint.<kind>.<key>)
//     and read the streams' info, nothing else;
//   - the writer creates and reads its own consumer on TOUCHPOINTS, acks
//     its messages, publishes its dead letters and owns its fence bucket;
//   - the projector does the same for its partition consumers, and owns
//     its key-value buckets and outbox stream, DERIVED (customer.>) and its
//     dead letters; it reads single touchpoints (direct get) to re-derive
//     a customer after a correction;
//   - the api reads stream info only: it has no NATS writes;
//   - admin may do everything.
//
// Every service may read the info of TOUCHPOINTS, DERIVED and DEADLETTER:
// [Topology.Ensure] changes a stream only when it differs from the
// configuration, so a service that is not allowed to change streams still
// starts when an admin created them. Replies go to the user's own inbox
// ([InboxPrefix]).
func (n AccessNames) Permissions() (map[string]Permissions, error) {
	if n.AccountsBucket == "" {
		n.AccountsBucket = "journey_accounts"
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	producer := Permissions{Publish: append([]string{touchpointPrefix + "*.*"}, streamInfoSubjects()...)}
	collector := Permissions{Publish: append(append([]string{}, producer.Publish...), followSuppressedSubjects()...)}
	perms := map[string]Permissions{
		UserCollector: collector,
		UserSimulator: producer,
		UserWriter:    {Publish: n.writerPublish()},
		UserProjector: {Publish: n.projectorPublish()},
		UserAPI:       {Publish: n.apiPublish()},
		UserAdmin:     {Publish: []string{">"}, Subscribe: []string{">"}},
	}
	for u, p := range perms {
		if u != UserAdmin {
			p.Subscribe = []string{InboxPrefix(u) + ".>"}
		}
		sort.Strings(p.Publish)
		perms[u] = p
	}
	return perms, nil
}

// check refuses names the permissions cannot be written for: each name
// becomes one token of a subject.
func (n AccessNames) check() error {
	if n.Partitions < 1 || n.Partitions > 1024 {
		return fmt.Errorf("%w: partitions must be 1..1024, got %d", ErrAccess, n.Partitions)
	}
	for name, v := range map[string]string{"writer consumer": n.WriterConsumer, "writer fence bucket": n.WriterFenceBucket, "projector durable": n.ProjectorDurable,
		"state bucket": n.StateBucket, "index bucket": n.IndexBucket, "outbox stream": n.OutboxStream, "accounts bucket": n.AccountsBucket} {
		if v == "" || strings.ContainsAny(v, ".*> \t") {
			return fmt.Errorf("%w: %s %q must be one subject token", ErrAccess, name, v)
		}
	}
	return nil
}

// Subjects the allow-lists are made of.
const (
	jsAPI = "$JS.API."
	// suppressedKV is the suppression list's stream (pkg/suppression,
	// bucket journey_suppressed).
	suppressedKV = "KV_journey_suppressed"
	// opsKV is the live rules version's stream (pkg/ruleset, bucket
	// JOURNEY_OPS).
	opsKV = "KV_JOURNEY_OPS"
)

// streamInfoSubjects read the info of the account and of the streams
// every service checks at start.
func streamInfoSubjects() []string {
	return []string{jsAPI + "INFO", jsAPI + "STREAM.INFO." + TouchpointStream, jsAPI + "STREAM.INFO." + DerivedStream,
		jsAPI + "STREAM.INFO." + DeadLetterStream, jsAPI + "STREAM.INFO." + ReplayStream}
}

// consumeSubjects are what a durable pull consumer's owner needs: create
// or update it (with or without a filter in the subject), read its info,
// pull and ack.
func consumeSubjects(streamName, durable string) []string {
	c := streamName + "." + durable
	return []string{jsAPI + "CONSUMER.CREATE." + c, jsAPI + "CONSUMER.CREATE." + c + ".>", jsAPI + "CONSUMER.DURABLE.CREATE." + c,
		jsAPI + "CONSUMER.INFO." + c, jsAPI + "CONSUMER.MSG.NEXT." + c, "$JS.ACK." + c + ".>"}
}

// ownSubjects are what the owner of a stream (the projector's buckets and
// outbox) needs: create, update, read it and get messages.
func ownSubjects(streamName string) []string {
	return []string{jsAPI + "STREAM.CREATE." + streamName, jsAPI + "STREAM.UPDATE." + streamName, jsAPI + "STREAM.INFO." + streamName,
		jsAPI + "STREAM.MSG.GET." + streamName, jsAPI + "DIRECT.GET." + streamName, jsAPI + "DIRECT.GET." + streamName + ".>"}
}

// followSuppressedSubjects are what a reader of the suppression list
// needs: create the bucket if missing and watch it with an ordered
// consumer. No $KV.<bucket> publish: only admin (an erasure) writes
// entries.
func followSuppressedSubjects() []string {
	return []string{jsAPI + "STREAM.INFO." + suppressedKV, jsAPI + "STREAM.CREATE." + suppressedKV, jsAPI + "CONSUMER.CREATE." + suppressedKV,
		jsAPI + "CONSUMER.CREATE." + suppressedKV + ".>", jsAPI + "CONSUMER.DELETE." + suppressedKV + ".>", jsAPI + "CONSUMER.INFO." + suppressedKV + ".>", "$JS.FC." + suppressedKV + ".>"}
}

// watchOpsSubjects are what a follower of the live rules version needs:
// read the bucket and watch it with an ordered consumer. Only journeyctl
// (admin) moves the pointer.
func watchOpsSubjects() []string {
	return []string{jsAPI + "STREAM.INFO." + opsKV, jsAPI + "CONSUMER.CREATE." + opsKV, jsAPI + "CONSUMER.CREATE." + opsKV + ".>",
		jsAPI + "CONSUMER.DELETE." + opsKV + ".>", jsAPI + "CONSUMER.INFO." + opsKV + ".>", "$JS.FC." + opsKV + ".>",
		jsAPI + "DIRECT.GET." + opsKV, jsAPI + "DIRECT.GET." + opsKV + ".>", jsAPI + "STREAM.MSG.GET." + opsKV}
}

// writerPublish is the writer's publish allow-list.
func (n AccessNames) writerPublish() []string {
	// The writer owns its fence bucket: writers take turns per table there.
	pub := append(append([]string{DeadLetterSubject(n.WriterConsumer), KVKeyPrefix(n.WriterFenceBucket) + ">"}, streamInfoSubjects()...),
		consumeSubjects(TouchpointStream, n.WriterConsumer)...)
	pub = append(append(pub, ownSubjects(KVStream(n.WriterFenceBucket))...), followSuppressedSubjects()...)
	// A writer with JOURNEY_WRITER_INPUT=replay: its own durable on REPLAY.
	return append(append(pub, DeadLetterSubject(n.WriterConsumer+"-replay")),
		consumeSubjects(ReplayStream, n.WriterConsumer+"-replay")...)
}

// projectorPublish is the projector's publish allow-list.
func (n AccessNames) projectorPublish() []string {
	state, index := KVStream(n.StateBucket), KVStream(n.IndexBucket)
	proj := []string{derivedPrefix + "*.*", ProjectorOutboxSubject(n.OutboxStream),
		KVKeyPrefix(n.StateBucket) + ">", KVKeyPrefix(n.IndexBucket) + ">",
		// The index is read with an ordered (ephemeral) consumer: any name,
		// on the index bucket only, with flow control.
		jsAPI + "CONSUMER.CREATE." + index + ".>", jsAPI + "CONSUMER.DELETE." + index + ".>",
		jsAPI + "CONSUMER.INFO." + index + ".>", "$JS.FC." + index + ".>",
		// A correction re-derives its customer from the stream: direct
		// gets of the customer's messages (a read; no consumer).
		jsAPI + "DIRECT.GET." + TouchpointStream, jsAPI + "STREAM.MSG.GET." + TouchpointStream}
	proj = append(append(append(proj, streamInfoSubjects()...), followSuppressedSubjects()...), watchOpsSubjects()...)
	// The projector creates the ops bucket if missing and reports which
	// rules version each instance runs (ruleset.Store.SetRunning).
	proj = append(proj, jsAPI+"STREAM.CREATE."+opsKV, jsAPI+"STREAM.UPDATE."+opsKV, KVKeyPrefix("JOURNEY_OPS")+"rules.running.>")
	// The account projection (JOURNEY_PROJECTOR_ACCOUNTS_ENABLED) owns its
	// bucket and watches its refresh requests with an ordered consumer.
	accounts := KVStream(n.AccountsBucket)
	proj = append(proj, KVKeyPrefix(n.AccountsBucket)+">", jsAPI+"CONSUMER.CREATE."+accounts+".>",
		jsAPI+"CONSUMER.DELETE."+accounts+".>", jsAPI+"CONSUMER.INFO."+accounts+".>", "$JS.FC."+accounts+".>")
	for _, s := range []string{state, index, n.OutboxStream, accounts} {
		proj = append(proj, ownSubjects(s)...)
	}
	// The outbox loader dead-letters the rows ClickHouse refuses.
	proj = append(proj, DeadLetterSubject(ProjectorOutboxDurable(n.ProjectorDurable)))
	proj = append(proj, consumeSubjects(n.OutboxStream, ProjectorOutboxDurable(n.ProjectorDurable))...)
	// A projector with JOURNEY_PROJECTOR_INPUT=replay: its own outbox and
	// durables on REPLAY.
	replayOutbox := n.OutboxStream + "_REPLAY"
	proj = append(append(proj, ProjectorOutboxSubject(replayOutbox)), ownSubjects(replayOutbox)...)
	proj = append(proj, DeadLetterSubject(ProjectorOutboxDurable(n.ProjectorDurable+"-replay")))
	proj = append(proj, consumeSubjects(replayOutbox, ProjectorOutboxDurable(n.ProjectorDurable+"-replay"))...)
	for p := range n.Partitions {
		durable := ProjectorPartitionDurable(n.ProjectorDurable, p)
		proj = append(proj, DeadLetterSubject(durable))
		proj = append(proj, consumeSubjects(TouchpointStream, durable)...)
		replay := n.ProjectorDurable + "-replay-p" + strconv.Itoa(p)
		proj = append(proj, DeadLetterSubject(replay))
		proj = append(proj, consumeSubjects(ReplayStream, replay)...)
	}
	return proj
}

// apiPublish is the api's publish allow-list: it shows the ops status
// (pkg/opsstatus) from stream and consumer info only, which changes
// nothing on the server.
func (n AccessNames) apiPublish() []string {
	apiRead := append(append([]string{jsAPI + "STREAM.INFO." + n.OutboxStream}, streamInfoSubjects()...), watchOpsSubjects()...)
	for _, s := range []string{TouchpointStream, DerivedStream, n.OutboxStream} {
		apiRead = append(apiRead, jsAPI+"CONSUMER.LIST."+s, jsAPI+"CONSUMER.INFO."+s+".*")
	}
	return apiRead
}

// PasswordVar is the name of the variable that holds a user's password in
// [AuthConfig]'s output, e.g. JOURNEY_NATS_WRITER_PASSWORD. A real
// nats-server takes it from its environment (a bcrypt hash from
// `nats server passwd` works as well as the plain password).
func PasswordVar(user string) string {
	return "JOURNEY_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// AuthConfig renders the users and permissions as a nats-server
// configuration block (authorization { users: [...] }), with each password
// a variable reference ([PasswordVar]). deploy/nats/permissions.conf is its
// output for the defaults; the embedded server processes the same text.
func AuthConfig(perms map[string]Permissions) string {
	var b strings.Builder
	b.WriteString("# journey's NATS users and what each may do (generated from pkg/stream/access.go;\n")
	b.WriteString("# go test ./pkg/stream -run TestDeployPermissionsMatchCode -update rewrites it).\n")
	b.WriteString("# Passwords come from the environment: ")
	for i, u := range Users() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + PasswordVar(u))
	}
	b.WriteString(".\n\nauthorization {\n  users: [\n")
	for _, u := range Users() {
		p, ok := perms[u]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", u, PasswordVar(u))
		fmt.Fprintf(&b, "        publish: {allow: %s}\n", quoteList(p.Publish))
		fmt.Fprintf(&b, "        subscribe: {allow: %s}\n", quoteList(p.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func quoteList(subjects []string) string {
	if len(subjects) == 0 {
		return "[]"
	}
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = strconv.Quote(s)
	}
	return "[\n          " + strings.Join(q, "\n          ") + "\n        ]"
}
