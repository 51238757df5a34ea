//! What each role may do on the command API: the one table.
//!
//! A role that may never do an action is 403 `forbidden` before anything
//! is read. A customer acting on an order that is not theirs gets 404, as
//! if it did not exist (the check is in the order's transaction, after its
//! row is locked), so ids of other customers' orders reveal nothing.

use orderflow_service::auth::{Actor, Rejection, Role};

/// An action on the command API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Customers, products and stock.
    Catalog,
    Place,
    Pay,
    Ship,
    Deliver,
    Cancel,
}

impl Action {
    /// The roles that may take this action at all.
    pub fn roles(self) -> &'static [Role] {
        use Role::{Customer, Service, Staff};
        match self {
            Self::Catalog => &[Staff],
            Self::Place | Self::Pay | Self::Cancel => &[Customer, Staff, Service],
            Self::Ship | Self::Deliver => &[Staff, Service],
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Self::Catalog => "only staff tokens may change customers, products and stock",
            Self::Ship | Self::Deliver => "only staff and service tokens may ship and deliver",
            Self::Place | Self::Pay | Self::Cancel => "this token may not act on orders",
        }
    }
}

/// 403 unless `actor`'s role may take `action`.
pub fn allow(actor: &Actor, action: Action) -> Result<(), Rejection> {
    actor.require(action.roles(), action.refusal())
}

/// Whether `actor` may see and act on an order of `customer`: staff and
/// service on every order, a customer on their own.
pub fn owns(actor: &Actor, customer: uuid::Uuid) -> bool {
    actor.own_customer().is_none_or(|own| own == customer)
}
