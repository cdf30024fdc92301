package stack

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/pkg/warehouse"
)

// clickHouseLogins are the local ClickHouse's users for one run: one per
// role (docs/security.md), each limited to journey's database. The zero
// value (an external server) leaves the configured user to every service.
type clickHouseLogins struct {
	users     []chserver.User
	adminFile string
}

// clickHouseUsers makes the users with fresh passwords; the admin's is
// written to <data>/clickhouse-admin.password (0600), never printed.
func clickHouseUsers(dataDir, database string) (clickHouseLogins, error) {
	l := clickHouseLogins{adminFile: filepath.Join(dataDir, "clickhouse-admin.password")}
	for _, u := range []struct {
		name string
		role chserver.Role
	}{{"journey_admin", chserver.RoleAdmin}, {"journey_writer", chserver.RoleReadWrite},
		{"journey_projector", chserver.RoleReadWrite}, {"journey_api", chserver.RoleReadOnly}} {
		l.users = append(l.users, chserver.User{Name: u.name, Password: randomHex(16), Role: u.role, Database: database})
	}
	if err := os.WriteFile(l.adminFile, []byte(l.users[0].Password+"\n"), 0o600); err != nil {
		return clickHouseLogins{}, fmt.Errorf("%w: ClickHouse admin password file: %w", ErrStack, err)
	}
	return l, nil
}

func (l clickHouseLogins) list() []chserver.User { return l.users }

// as is c logged in as the named user (c unchanged without local users).
func (l clickHouseLogins) as(c warehouse.Config, role chserver.Role, name string) warehouse.Config {
	for _, u := range l.users {
		if u.Name == name && u.Role == role {
			c.User, c.Password = u.Name, u.Password
			return c
		}
	}
	return c
}
