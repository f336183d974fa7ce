// Package postgres owns an instance's role and database on a shared PostgreSQL server: Ensure
// creates or repairs them, Finalize revokes the login and, under the Delete policy, drops both.
// It talks to the server only through DB, with a deadline on every statement, and never writes a
// plaintext password into a statement (the server logs statements that fail).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/external"
)

const system = "PostgreSQL"

// DB is the part of a pgx pool or connection that the provider uses; *pgxpool.Pool and
// *pgx.Conn satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config says which server to use and how the apps reach it.
type Config struct {
	// AdminDSN connects as a role that may create roles and databases, and signal their
	// backends (a superuser, or on managed servers a member of every role it creates). Empty
	// turns the provider off.
	AdminDSN string
	// AppHost and AppPort are where the apps reach the server (a Service, a pooler); empty and
	// zero mean the admin DSN's host and port.
	AppHost string
	AppPort int
	// AppSSLMode is the sslmode of the apps' DATABASE_URL; empty leaves it out.
	AppSSLMode string
	// CallTimeout bounds each statement; zero means external.DefaultCallTimeout.
	CallTimeout time.Duration
}

// Enabled says whether a server is configured; when it is not, nothing here is called.
func (c Config) Enabled() bool { return c.AdminDSN != "" }

// Provider ensures and finalizes roles and databases on one server.
type Provider struct {
	db      DB
	pool    *pgxpool.Pool
	cfg     Config
	secrets []string
}

// New parses the admin DSN and makes a pool that connects on first use, so a server that is down
// makes Ensure fail, not the hook's start.
func New(cfg Config) (*Provider, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.AdminDSN)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL admin DSN: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("making the PostgreSQL pool: %w", err)
	}
	p, err := NewWithDB(pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	p.pool = pool
	return p, nil
}

// NewWithDB uses db for every statement; cfg.AdminDSN still gives the apps' default host and
// port.
func NewWithDB(db DB, cfg Config) (*Provider, error) {
	pcfg, err := pgconn.ParseConfig(cfg.AdminDSN)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL admin DSN: %w", err)
	}
	if cfg.AppHost == "" {
		cfg.AppHost = pcfg.Host
	}
	if cfg.AppPort == 0 {
		cfg.AppPort = int(pcfg.Port)
	}
	return &Provider{db: db, cfg: cfg, secrets: []string{pcfg.Password}}, nil
}

// Close closes the pool that New made.
func (p *Provider) Close() {
	if p.pool != nil {
		p.pool.Close()
	}
}

// Ensure makes the instance's role able to log in with the derived password and makes its
// database exist, owned by the role and closed to other roles. Both carry the instance's owner
// mark (a comment on the role and on the database); a role or a database of the instance's names
// that is not the instance's (another UID, or no mark) is refused before anything is changed. It
// sets the password every time: a role that a Retain finalize left without login, or one whose
// password was changed by hand, works again. It returns the DATABASE_URL for the apps.
func (p *Provider) Ensure(ctx context.Context, in external.Instance) (string, error) {
	role, db := in.Names.DatabaseRole, in.Names.Database
	if in.DatabasePassword == "" {
		return "", external.Failed(system, fmt.Sprintf("ensuring role %q", role), false, errors.New("no database password was derived"))
	}
	mine := external.Mark{UID: in.UID}
	password := quoteLiteral(scramVerifier(role, in.DatabasePassword))

	var (
		st      state
		created bool
	)
	for attempt := 0; ; attempt++ {
		var err error
		if st, err = p.state(ctx, in); err != nil {
			return "", err
		}
		if st.roleExists {
			break
		}
		// The role and its mark in one simple-protocol query: one implicit transaction, so no
		// role of this name ever exists without its owner.
		err = p.exec(ctx, in, fmt.Sprintf("creating role %q", role),
			"CREATE ROLE "+ident(role)+" WITH LOGIN PASSWORD "+password+"; COMMENT ON ROLE "+ident(role)+" IS "+quoteLiteral(mine.Text()))
		switch {
		case err == nil:
			st.roleExists, st.roleMark, st.roleMarked, created = true, mine, true, true
		case isCode(err, duplicateObject, uniqueViolation) && attempt == 0:
			continue // another Ensure created it a moment ago: read its mark
		default:
			return "", err
		}
		break
	}

	claim, err := in.Claim(system, "role", role, st.roleMark, st.roleMarked, false)
	if err != nil {
		return "", err
	}
	if claim == external.Remark {
		if err := p.mark(ctx, in, "ROLE", role, mine); err != nil {
			return "", err
		}
	}
	if !created {
		if err := p.exec(ctx, in, fmt.Sprintf("setting the login and password of role %q", role),
			"ALTER ROLE "+ident(role)+" WITH LOGIN PASSWORD "+password); err != nil {
			return "", err
		}
	}

	if st.dbOwner == nil {
		// CREATE DATABASE has no IF NOT EXISTS and cannot run in a transaction: the lookup above
		// and duplicate_database cover a concurrent Ensure. A crash before the comment leaves a
		// database owned by the instance's role, which the claim below accepts as ours.
		err := p.exec(ctx, in, fmt.Sprintf("creating database %q", db),
			"CREATE DATABASE "+ident(db)+" OWNER "+ident(role))
		switch {
		case err == nil:
			if err := p.mark(ctx, in, "DATABASE", db, mine); err != nil {
				return "", err
			}
			st.dbMark, st.dbMarked, st.dbOwner, st.publicConnect = mine, true, &role, new(true) // a new database lets PUBLIC connect
		case isCode(err, duplicateDatabase, uniqueViolation):
			if st, err = p.state(ctx, in); err != nil {
				return "", err
			}
			if st.dbOwner == nil {
				return "", external.Failed(system, fmt.Sprintf("creating database %q", db), true, errors.New("it was created and dropped meanwhile"))
			}
		default:
			return "", err
		}
	}
	claim, err = in.Claim(system, "database", db, st.dbMark, st.dbMarked, *st.dbOwner == role)
	if err != nil {
		return "", err
	}
	if claim == external.Remark {
		if err := p.mark(ctx, in, "DATABASE", db, mine); err != nil {
			return "", err
		}
	}
	if *st.dbOwner != role {
		if err := p.exec(ctx, in, fmt.Sprintf("giving database %q to role %q", db, role),
			"ALTER DATABASE "+ident(db)+" OWNER TO "+ident(role)); err != nil {
			return "", err
		}
	}
	// Every tenant shares the server, and PUBLIC may connect to a new database by default.
	if st.publicConnect != nil && *st.publicConnect {
		if err := p.exec(ctx, in, fmt.Sprintf("closing database %q to other roles", db),
			"REVOKE ALL ON DATABASE "+ident(db)+" FROM PUBLIC"); err != nil {
			return "", err
		}
	}
	return p.databaseURL(in), nil
}

// state is what the server holds under the instance's names.
type state struct {
	roleExists    bool
	roleMark      external.Mark
	roleMarked    bool
	dbOwner       *string // nil: no database
	dbMark        external.Mark
	dbMarked      bool
	publicConnect *bool
}

func (p *Provider) state(ctx context.Context, in external.Instance) (state, error) {
	role, db := in.Names.DatabaseRole, in.Names.Database
	var (
		st               state
		roleNote, dbNote *string
	)
	err := p.scan(ctx, in, fmt.Sprintf("looking up role %q and database %q", role, db),
		[]any{&st.roleExists, &roleNote, &st.dbOwner, &dbNote, &st.publicConnect}, queryState, role, db)
	if err != nil {
		return state{}, err
	}
	if roleNote != nil {
		st.roleMark, st.roleMarked = external.ParseMarkText(*roleNote)
	}
	if dbNote != nil {
		st.dbMark, st.dbMarked = external.ParseMarkText(*dbNote)
	}
	return st, nil
}

// mark writes the owner mark on a role or a database (kind "ROLE" or "DATABASE").
func (p *Provider) mark(ctx context.Context, in external.Instance, kind, name string, m external.Mark) error {
	return p.exec(ctx, in, fmt.Sprintf("marking %s %q as %s's", strings.ToLower(kind), name, in),
		"COMMENT ON "+kind+" "+ident(name)+" IS "+quoteLiteral(m.Text()))
}

// Finalize revokes the role's login and ends its sessions (and, under Delete, those on its
// database), then drops the database and the role under Delete; under Retain it marks both as
// released (retained), so that a recreated parent may adopt them on purpose. A role or database
// that is not the instance's is left alone: not changed, not waited for, and reported through a
// *external.Error with NotOurs set, next to what is left. It returns, in words for the status,
// what it has not yet seen gone; nothing left means done.
func (p *Provider) Finalize(ctx context.Context, in external.Instance, policy v1beta1.DeletionPolicy) ([]string, error) {
	role, db := in.Names.DatabaseRole, in.Names.Database
	del := policy == v1beta1.DeletionPolicyDelete

	st, err := p.state(ctx, in)
	if err != nil {
		return nil, err
	}
	var alone []error
	ourRole := st.roleExists
	if st.roleExists {
		if _, err := in.Claim(system, "role", role, st.roleMark, st.roleMarked, false); err != nil {
			ourRole, alone = false, append(alone, err)
		}
	}
	ourDB := st.dbOwner != nil
	if st.dbOwner != nil {
		if _, err := in.Claim(system, "database", db, st.dbMark, st.dbMarked, ourRole && *st.dbOwner == role); err != nil {
			ourDB, alone = false, append(alone, err)
		}
	}
	released := external.Mark{UID: in.UID, Retained: true}

	if ourRole {
		// Login goes first: an app whose session ends below cannot come back before the drop.
		err := p.exec(ctx, in, fmt.Sprintf("revoking the login of role %q", role), "ALTER ROLE "+ident(role)+" NOLOGIN")
		if err != nil && !isCode(err, undefinedObject) {
			return nil, err
		}
	}
	if ourRole || (del && ourDB) {
		if err := p.exec(ctx, in, fmt.Sprintf("ending the sessions of role %q", role), terminateSessions,
			ifOurs(ourRole, role), ifOurs(del && ourDB, db)); err != nil {
			return nil, err
		}
	}
	switch {
	case del:
		if ourDB {
			if err := p.exec(ctx, in, fmt.Sprintf("dropping database %q", db), "DROP DATABASE IF EXISTS "+ident(db)); err != nil {
				return nil, err
			}
		}
		if ourRole {
			if err := p.exec(ctx, in, fmt.Sprintf("dropping role %q", role), "DROP ROLE IF EXISTS "+ident(role)); err != nil {
				return nil, err
			}
		}
	default:
		if ourRole && st.roleMark != released {
			if err := p.mark(ctx, in, "ROLE", role, released); err != nil && !isCode(err, undefinedObject) {
				return nil, err
			}
		}
		if ourDB && st.dbMark != released {
			if err := p.mark(ctx, in, "DATABASE", db, released); err != nil && !isCode(err, undefinedObject) {
				return nil, err
			}
		}
	}

	var (
		roleExists, canLogin, dbExists bool
		sessions                       int
	)
	err = p.scan(ctx, in, fmt.Sprintf("checking role %q and database %q", role, db),
		[]any{&roleExists, &canLogin, &dbExists, &sessions}, queryLeft, role, db, ifOurs(ourRole, role), ifOurs(del && ourDB, db))
	if err != nil {
		return nil, err
	}
	var left []string
	if del && ourDB && dbExists {
		left = append(left, fmt.Sprintf("PostgreSQL database %q still exists", db))
	}
	if del && ourRole && roleExists {
		left = append(left, fmt.Sprintf("PostgreSQL role %q still exists", role))
	}
	if ourRole && canLogin {
		left = append(left, fmt.Sprintf("PostgreSQL role %q can still log in", role))
	}
	if sessions > 0 {
		left = append(left, fmt.Sprintf("PostgreSQL role %q still has %d sessions", role, sessions))
	}
	return left, errors.Join(alone...)
}

const (
	// One round trip tells whether the role exists and its comment, who owns the database, its
	// comment and whether PUBLIC may connect to it (the last three NULL when there is no
	// database).
	queryState = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
	(SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1),
	d.owner, d.note, d.public_connect
FROM (SELECT 1) AS one LEFT JOIN (
	SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS note,
		has_database_privilege('public', oid, 'CONNECT') AS public_connect
	FROM pg_database WHERE datname = $2) AS d ON true`

	// $1 is NULL when the role is not the instance's, $2 under Retain or when the database is not
	// the instance's: only the sessions of what is the instance's end. The timeout makes each
	// call wait until the backend is gone.
	terminateSessions = `SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity
WHERE (usename = $1 OR datname = $2) AND pid <> pg_backend_pid()`

	queryLeft = `SELECT
	EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
	EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin),
	EXISTS (SELECT 1 FROM pg_database WHERE datname = $2),
	(SELECT count(*) FROM pg_stat_activity WHERE (usename = $3 OR datname = $4) AND pid <> pg_backend_pid())`
)

// ifOurs is name when it is the instance's to act on, else NULL, which matches no session.
func ifOurs(ours bool, name string) *string {
	if ours {
		return &name
	}
	return nil
}

// databaseURL is what the apps use: the role, the derived password and the apps' host.
func (p *Provider) databaseURL(in external.Instance) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(in.Names.DatabaseRole, in.DatabasePassword),
		Host:   net.JoinHostPort(p.cfg.AppHost, strconv.Itoa(p.cfg.AppPort)),
		Path:   "/" + in.Names.Database,
	}
	if p.cfg.AppSSLMode != "" {
		u.RawQuery = url.Values{"sslmode": {p.cfg.AppSSLMode}}.Encode()
	}
	return u.String()
}

// exec runs one statement. Every statement here is idempotent, so one that lost a race for a
// catalog row to a concurrent Ensure or Finalize is simply run again.
func (p *Provider) exec(ctx context.Context, in external.Instance, op, sql string, args ...any) error {
	ctx, cancel := external.WithCallTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	var err error
	for range 3 {
		if _, err = p.db.Exec(ctx, sql, args...); !concurrentUpdate(err) {
			break
		}
	}
	if err != nil {
		return p.failed(in, op, err)
	}
	return nil
}

// concurrentUpdate: two sessions changed one catalog row (a role, a database's ACL) at once.
// PostgreSQL then fails the later one with an internal error rather than making it wait, and
// says so only in the message.
func concurrentUpdate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "XX000" && pgErr.Message == "tuple concurrently updated"
}

func (p *Provider) scan(ctx context.Context, in external.Instance, op string, dest []any, sql string, args ...any) error {
	ctx, cancel := external.WithCallTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	if err := p.db.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return p.failed(in, op, err)
	}
	return nil
}

func (p *Provider) failed(in external.Instance, op string, err error) error {
	return external.Failed(system, op, retryable(err), err, append([]string{in.DatabasePassword}, p.secrets...)...)
}

// SQLSTATE codes that are normal answers.
const (
	duplicateObject   = "42710" // CREATE ROLE of a role that exists
	duplicateDatabase = "42P04"
	// A CREATE ROLE or CREATE DATABASE that raced another one for the same name waits for it and
	// then trips over the catalog's unique index instead of reporting a duplicate.
	uniqueViolation = "23505"
	undefinedObject = "42704" // ALTER ROLE of a role that does not exist
)

func isCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

// retryable sorts server answers: a connection that broke or could not be made, a server
// starting or stopping, a conflict with a concurrent session, or a shortage of resources may
// pass; anything else (denied, invalid, a wrong password) needs a person.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources
			strings.HasPrefix(pgErr.Code, "57P"),         // shutdown, cannot connect now
			pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
			pgErr.Code == "55006", pgErr.Code == "55P03": // object in use, lock not available
			return true
		}
		return concurrentUpdate(err)
	}
	return external.Transient(err) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// quoteLiteral quotes s as a string constant. Utility statements (CREATE ROLE, ALTER ROLE) take
// no bind parameters, so the value goes into the text; a backslash switches to the escape-string
// form so the result means the same whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}
