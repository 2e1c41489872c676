package bench

import (
	"context"
	"database/sql"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// gormVariant is GORM over the same pools as the raw variants: on SQLite
// one gorm.DB on the writer and one on the reader.
type gormVariant struct {
	w, r *gorm.DB
}

// openGorm opens GORM with SkipDefaultTransaction (a write is one
// statement, as in the other variants) and a silent logger; prepare turns
// PrepareStmt on.
func openGorm(b *testing.B, t target, prepare bool) variant {
	b.Helper()
	w, r := t.open(b)
	gw := gormOn(b, t.driver, w, prepare)
	gr := gw
	if r != w {
		gr = gormOn(b, t.driver, r, prepare)
	}
	return &gormVariant{w: gw, r: gr}
}

func gormOn(b *testing.B, driver string, db *sql.DB, prepare bool) *gorm.DB {
	b.Helper()
	var d gorm.Dialector
	switch driver {
	case "postgres":
		d = postgres.New(postgres.Config{Conn: db})
	case "mysql":
		d = mysql.New(mysql.Config{Conn: db})
	default:
		d = &sqlite.Dialector{Conn: db}
	}
	g, err := gorm.Open(d, &gorm.Config{
		SkipDefaultTransaction: true,
		PrepareStmt:            prepare,
		Logger:                 logger.Default.LogMode(logger.Silent),
	})
	if err != nil {
		b.Fatal(err)
	}
	if prepare {
		b.Cleanup(func() {
			if p, ok := g.ConnPool.(*gorm.PreparedStmtDB); ok {
				p.Close()
			}
		})
	}
	return g
}

func (v *gormVariant) get(ctx context.Context, id int64) (row, error) {
	var x row
	err := v.w.WithContext(ctx).Take(&x, id).Error
	return x, err
}

func (v *gormVariant) read(ctx context.Context, id int64) (row, error) {
	var x row
	err := v.r.WithContext(ctx).Take(&x, id).Error
	return x, err
}

func (v *gormVariant) insert(ctx context.Context, r *row) error {
	now := stamp()
	r.Version, r.Created, r.Updated = 1, now, now
	return v.w.WithContext(ctx).Create(r).Error
}

func (v *gormVariant) insertMany(ctx context.Context, rs []row) error {
	now := stamp()
	for i := range rs {
		rs[i].Version, rs[i].Created, rs[i].Updated = 1, now, now
	}
	return v.w.WithContext(ctx).Create(&rs).Error
}

func (v *gormVariant) find(ctx context.Context, grp int64) ([]row, error) {
	var out []row
	err := v.w.WithContext(ctx).Where("grp = ?", grp).Order("id").Find(&out).Error
	return out, err
}

func (v *gormVariant) update(ctx context.Context, r *row) error {
	r.Updated = stamp()
	res := v.w.WithContext(ctx).Model(&row{}).Where("id = ? AND version = ?", r.ID, r.Version).Updates(map[string]any{
		"grp":        r.Grp,
		"email":      r.Email,
		"name":       r.Name,
		"score":      r.Score,
		"updated_at": r.Updated,
		"version":    gorm.Expr("version + 1"),
	})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errStale
	}
	r.Version++
	return nil
}
