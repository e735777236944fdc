//! App catalogs an environment added (where each comes from), and copies of the templates
//! stacks were installed from (by digest), so a stack stays upgradable and rollbackable
//! whatever happens to its catalog.

use rusqlite::{OptionalExtension, params};

use crate::{NewEvent, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow {
    pub env: String,
    pub name: String,
    /// A directory on the server, or a git URL.
    pub source: String,
    pub branch: Option<String>,
    pub created_ms: u64,
}

impl Store {
    /// Every environment's catalogs.
    pub fn catalogs(&self) -> Result<Vec<CatalogRow>> {
        let mut st = self.conn.prepare(
            "SELECT env, name, source, branch, created_ms FROM catalogs ORDER BY env, name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(CatalogRow {
                env: r.get(0)?,
                name: r.get(1)?,
                source: r.get(2)?,
                branch: r.get(3)?,
                created_ms: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds a catalog; false when the environment has one of that name.
    pub fn add_catalog(
        &mut self,
        c: &CatalogRow,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "INSERT OR IGNORE INTO catalogs (env, name, source, branch, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.env, c.name, c.source, c.branch, now_ms as i64],
            event,
            now_ms,
        )
    }

    pub fn remove_catalog(
        &mut self,
        env: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM catalogs WHERE env = ?1 AND name = ?2",
            params![env, name],
            event,
            now_ms,
        )
    }

    /// Keeps a template copy (JSON) under its digest; a copy already kept stays.
    pub fn put_template_copy(&mut self, digest: &str, template: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO template_copies (digest, template) VALUES (?1, ?2)",
            params![digest, template],
        )?;
        Ok(())
    }

    pub fn template_copy(&self, digest: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT template FROM template_copies WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .optional()?)
    }
}
