//! The session's tables, where the views ([`super::views`], [`super::stacks`]) are planned only
//! when a query first names them.
//!
//! Every command made every view when it opened its session: planning the six of them took
//! about 2 ms of a short question that takes 15-20 ms in all (`top` on a 40 K-row capture),
//! though a command uses one or two. A view is defined here by the function that plans it, and
//! planned (once) the first time the SQL planner or [`SessionContext::table`] looks its name up.
//! Listing the tables (`information_schema.tables`, `SHOW TABLES`) names the views without
//! planning them.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use datafusion::{
    catalog::{MemorySchemaProvider, SchemaProvider, TableProvider},
    common::exec_err,
    error::Result,
    logical_expr::TableType,
    prelude::{DataFrame, SessionContext},
};
use futures::future::BoxFuture;

/// Plans a view's rows in a session.
pub type Definition =
    Box<dyn Fn(SessionContext) -> BoxFuture<'static, Result<DataFrame>> + Send + Sync>;

/// The session's default schema: the tables registered in it, and the views defined and not
/// planned yet.
pub struct Tables {
    registered: MemorySchemaProvider,
    /// Defined, not planned yet, by name.
    defined: Mutex<HashMap<String, Arc<Definition>>>,
    /// The session the views are planned in (the one this schema belongs to), from
    /// [`Tables::install`] until [`Tables::release`].
    session: Mutex<Option<SessionContext>>,
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut defined: Vec<String> = lock(&self.defined).keys().cloned().collect();
        defined.sort();
        f.debug_struct("Tables")
            .field("registered", &self.registered.table_names())
            .field("defined", &defined)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tables {
    /// Makes this the default schema of `ctx`, a new session (its default schema empty).
    pub fn install(ctx: &SessionContext) -> Result<Arc<Self>> {
        let tables = Arc::new(Self {
            registered: MemorySchemaProvider::new(),
            defined: Mutex::default(),
            session: Mutex::new(Some(ctx.clone())),
        });
        let (catalog, schema) = {
            let state = ctx.state_ref();
            let state = state.read();
            let options = &state.config().options().catalog;
            (
                options.default_catalog.clone(),
                options.default_schema.clone(),
            )
        };
        let Some(catalog) = ctx.catalog(&catalog) else {
            return exec_err!("the session has no catalog {catalog}");
        };
        let old = catalog.register_schema(&schema, tables.clone())?;
        if let Some(name) = old.and_then(|old| old.table_names().pop()) {
            return exec_err!("the session's schema {schema} already had a table {name}");
        }
        Ok(tables)
    }

    /// Defines the view `name`, planned by `definition` when it is first named.
    pub fn define(&self, name: &str, definition: Definition) {
        lock(&self.defined).insert(name.to_owned(), Arc::new(definition));
    }

    /// Forgets the session, which holds this schema (so that both can be dropped).
    pub fn release(&self) {
        lock(&self.session).take();
        lock(&self.defined).clear();
    }

    /// Plans the view `name` if it is defined and not planned yet.
    async fn plan(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(definition) = lock(&self.defined).get(name).cloned() else {
            return Ok(None);
        };
        let Some(session) = lock(&self.session).clone() else {
            return Ok(None);
        };
        // No lock is held while planning: the plan looks up other tables (`events`, and
        // `frames` for `stacks`).
        let view = definition(session).await?.into_view();
        lock(&self.defined).remove(name);
        match self
            .registered
            .register_table(name.to_owned(), view.clone())
        {
            Ok(_) => Ok(Some(view)),
            // Planned twice at once: the first one stays.
            Err(_) => self.registered.table(name).await,
        }
    }
}

#[async_trait]
impl SchemaProvider for Tables {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.registered.table_names();
        names.extend(lock(&self.defined).keys().cloned());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.registered.table(name).await? {
            Some(table) => Ok(Some(table)),
            None => self.plan(name).await,
        }
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        if lock(&self.defined).contains_key(name) {
            return Ok(Some(TableType::View));
        }
        self.registered.table_type(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if lock(&self.defined).contains_key(&name) {
            return exec_err!("The table {name} already exists");
        }
        self.registered.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        lock(&self.defined).remove(name);
        self.registered.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.registered.table_exist(name) || lock(&self.defined).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::{
        array::{RecordBatch, UInt32Array},
        datatypes::{DataType, Field, Schema},
    };

    use super::*;

    /// A session with a table `t` (1, 2, 3) and the view `big` (t's rows over 1) defined;
    /// the counter counts the times `big` was planned.
    async fn session() -> (SessionContext, Arc<Tables>, Arc<AtomicUsize>) {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
        );
        let tables = Tables::install(&ctx).expect("install");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::UInt32, false)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(UInt32Array::from(vec![1, 2, 3]))])
            .expect("batch");
        ctx.register_batch("t", rows).expect("t");
        let planned = Arc::new(AtomicUsize::new(0));
        let count = planned.clone();
        tables.define(
            "big",
            Box::new(move |ctx| {
                count.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move { ctx.sql("SELECT n FROM t WHERE n > 1").await })
            }),
        );
        (ctx, tables, planned)
    }

    async fn rows(ctx: &SessionContext, query: &str) -> Result<usize> {
        let batches = ctx.sql(query).await?.collect().await?;
        Ok(batches.iter().map(RecordBatch::num_rows).sum())
    }

    #[tokio::test]
    async fn a_view_is_planned_once_when_a_query_first_names_it() {
        let (ctx, tables, planned) = session().await;
        assert_eq!(rows(&ctx, "SELECT * FROM t").await.expect("t"), 3);
        assert_eq!(planned.load(Ordering::SeqCst), 0, "t alone plans no view");
        // Listed, with its type, without being planned.
        let listed = "SELECT table_name FROM information_schema.tables \
                      WHERE table_schema = 'public' AND table_type = 'VIEW'";
        assert_eq!(rows(&ctx, listed).await.expect("listed"), 1);
        assert_eq!(planned.load(Ordering::SeqCst), 0, "listing plans no view");
        assert_eq!(rows(&ctx, "SELECT * FROM big").await.expect("big"), 2);
        assert_eq!(
            rows(&ctx, "SELECT count(*) FROM big b1, big b2")
                .await
                .expect("join"),
            1
        );
        assert_eq!(
            ctx.table("big")
                .await
                .expect("table")
                .count()
                .await
                .expect("count"),
            2
        );
        assert_eq!(planned.load(Ordering::SeqCst), 1);
        tables.release();
        assert!(
            ctx.sql("SELECT * FROM t").await.is_ok(),
            "registered tables stay"
        );
    }

    #[tokio::test]
    async fn a_defined_view_is_replaced_or_dropped_like_a_registered_one() {
        let (ctx, _tables, planned) = session().await;
        let taken = ctx.sql("CREATE VIEW big AS SELECT n FROM t").await;
        let message = taken.expect_err("exists").to_string();
        assert!(message.contains("already exists"), "{message}");
        ctx.sql("CREATE OR REPLACE VIEW big AS SELECT n FROM t WHERE n = 3")
            .await
            .expect("replace");
        assert_eq!(rows(&ctx, "SELECT * FROM big").await.expect("big"), 1);
        ctx.sql("DROP VIEW big").await.expect("drop");
        assert!(ctx.sql("SELECT * FROM big").await.is_err(), "dropped");
        assert!(planned.load(Ordering::SeqCst) <= 1);
    }
}
