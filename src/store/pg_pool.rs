//! The PostgreSQL pool's connection manager: a connection is checked at check-out without a
//! round trip, and dropped from the pool when one of its queries found the server gone.
//!
//! r2d2's usual check (`SELECT 1` at every check-out) costs a round trip per request. Instead:
//! at check-out, libpq reads whatever the server already sent on the socket, without waiting
//! (a restarted or `pg_terminate_backend`-ed server has sent its goodbye and closed it: that
//! read fails, and r2d2 takes another connection); and every connection carries a
//! [`LostConnectionWatch`] that notes a query failing because the connection is gone, so r2d2
//! closes it when it comes back instead of handing it to the next request.

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::r2d2::{ConnectionManager, ManageConnection};
use diesel::{Connection, PgConnection};

/// [`ConnectionManager`] for PostgreSQL with the cheap check-out test and the broken-on-error
/// rule described above.
#[derive(Debug)]
pub struct PgManager(ConnectionManager<PgConnection>);

impl PgManager {
    pub fn new(url: &str) -> PgManager {
        PgManager(ConnectionManager::new(url))
    }
}

impl ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        let mut conn = self.0.connect()?;
        conn.set_instrumentation(LostConnectionWatch::default());
        Ok(conn)
    }

    /// No round trip: reads what the server already sent (a notice of termination, the end of
    /// the stream), without waiting.
    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        // (A connection marked lost never comes back to the pool: see `has_broken`.) The pool's connections never LISTEN, so there is no notification to lose here; the
        // call is what makes libpq read the socket.
        match conn.notifications_iter().find_map(Result::err) {
            Some(e) => Err(diesel::r2d2::Error::QueryError(e)),
            None => Ok(()),
        }
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        self.0.has_broken(conn) || lost(conn)
    }
}

fn lost(conn: &mut PgConnection) -> bool {
    conn.instrumentation().downcast_ref::<LostConnectionWatch>().is_some_and(|w| w.lost)
}

/// Notes, on its connection, a query or transaction statement that failed because the
/// connection to the server is gone.
#[derive(Debug, Default)]
pub struct LostConnectionWatch {
    lost: bool,
}

impl Instrumentation for LostConnectionWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(e), .. } = event {
            if super::connection_gone(e) {
                self.lost = true;
            }
        }
    }
}
