package stack

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/writer"
)

// natsUsers are the NATS users of one run of the stack: the permissions of
// deploy/nats for the services' configured names, and fresh passwords.
type natsUsers struct {
	config    string            // nats-server authorization block
	passwords map[string]string // by user
	adminFile string            // where the admin's password is, for the nats CLI
}

// natsAuth makes the users for cfg. The admin password is written to
// <data>/nats-admin.password (mode 0600) rather than printed, so nothing
// secret reaches the terminal or a log.
func natsAuth(cfg Config, dataDir string) (natsUsers, error) {
	names := stream.AccessNames{Partitions: cfg.Stream.Partitions, WriterConsumer: cfg.Writer.Writer.Consumer, WriterFenceBucket: writer.FenceBucket,
		ProjectorDurable: cfg.Projector.Projector.Durable, StateBucket: cfg.Projector.Projector.Bucket,
		IndexBucket: cfg.Projector.Projector.IndexBucket, OutboxStream: cfg.Projector.Projector.OutboxStream,
		AccountsBucket: cfg.Projector.Projector.Accounts.Bucket}
	perms, err := names.Permissions()
	if err != nil {
		return natsUsers{}, fmt.Errorf("%w: NATS permissions: %w", ErrStack, err)
	}
	u := natsUsers{config: stream.AuthConfig(perms), passwords: map[string]string{},
		adminFile: filepath.Join(dataDir, "nats-admin.password")}
	for _, user := range stream.Users() {
		u.passwords[user] = randomHex(16)
	}
	if err := os.WriteFile(u.adminFile, []byte(u.passwords[stream.UserAdmin]+"\n"), 0o600); err != nil {
		return natsUsers{}, fmt.Errorf("%w: NATS admin password file: %w", ErrStack, err)
	}
	return u, nil
}

// vars are the password variables of the authorization block.
func (u natsUsers) vars() map[string]string {
	v := make(map[string]string, len(u.passwords))
	for user, pw := range u.passwords {
		v[stream.PasswordVar(user)] = pw
	}
	return v
}

// conn is c with user's credentials (and the inbox its permissions allow).
func (u natsUsers) conn(c stream.Conn, user string) stream.Conn {
	c.User, c.Password, c.PasswordFile, c.Token, c.CredsFile = user, u.passwords[user], "", "", ""
	c.InboxPrefix = ""
	return c
}
