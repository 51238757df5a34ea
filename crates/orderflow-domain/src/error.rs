//! Why the domain refused a command.

use crate::order::OrderStatus;
use crate::values::ProductId;

/// A command the order's rules do not allow. Every variant is the caller's
/// problem (a 4xx), never a fault of the system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command is not allowed in the order's current state.
    #[error("cannot {action} an order that is {current}")]
    InvalidTransition {
        action: &'static str,
        current: OrderStatus,
    },
    /// The order does not exist (any command but PlaceOrder).
    #[error("order not found")]
    NotFound,
    /// PlaceOrder for an id that already has an order.
    #[error("an order with this id already exists")]
    AlreadyExists,
    /// PlaceOrder with no lines.
    #[error("an order needs at least one line")]
    NoLines,
    /// PlaceOrder with more lines than allowed.
    #[error("an order has at most {max} lines")]
    TooManyLines { max: usize },
    /// The same product on two lines; send one line with the summed quantity.
    #[error("product {0} appears on more than one line")]
    DuplicateProduct(ProductId),
    /// The product exists but is not for sale.
    #[error("product {0} is not active")]
    ProductInactive(ProductId),
    /// Lines priced in different currencies.
    #[error("all lines of an order must be in one currency")]
    MixedCurrencies,
    /// Not enough stock to reserve.
    #[error("product {product_id}: {requested} requested, {available} available")]
    InsufficientStock {
        product_id: ProductId,
        requested: u32,
        available: i64,
    },
    /// The order's total does not fit the money type.
    #[error("order total is too large")]
    TotalTooLarge,
    /// The stored history cannot be replayed (a bug or a corrupt store).
    #[error("event history is inconsistent: {0}")]
    CorruptHistory(&'static str),
}
