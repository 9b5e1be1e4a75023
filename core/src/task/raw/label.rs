//! What a task, a nursery or a scope is called, in one word ([`Label`]): where it was
//! made, and the name it was given, if any. Every child's allocation holds one, and
//! names are rare (`spawn_named`), so an unnamed label is the `&'static Location` alone
//! (8 bytes, where a location and a boxed name beside it took 16), and a named one a box
//! holding both.
//!
//! # Why this is sound
//!
//! The word is a pointer, told apart by its lowest bit (a tagged pointer, with the
//! provenance of what it points to: tagged and untagged with `map_addr`):
//!
//! * **Clear: a location.** The `&'static Location<'static>` the label was made with,
//!   as a pointer. A `Location` is aligned to more than one byte (checked at compile
//!   time below), so the bit of a real one is clear. It is read back as the shared
//!   reference it was, for `'static`.
//! * **Set: a box.** The pointer of a `Box<Named>` ([`Box::into_raw`]) with the bit set;
//!   a `Named` is aligned to 8, so the bit was clear before. Cleared, it is the box's
//!   pointer again. The label owns the box: nothing else has its pointer, it is read
//!   only through `&self` (shared, never written after it was made), and `Drop`, with
//!   exclusive access, gives it back to `Box::from_raw` once.
//! * **Threads.** A label is a `&'static Location` (`Send` and `Sync`) or an owned
//!   `Box<Named>` (`Send` and `Sync`: a `Cow<'static, str>`, an `Instant` and a
//!   location), read only through `&self`: so is the label.

use std::borrow::Cow;
use std::mem::align_of;
use std::panic::Location;
use std::ptr::NonNull;
use std::time::Instant;

use crate::node::{Kind, Labelled};

/// What a task, a nursery or a scope is called: where it was made (`#[track_caller]`),
/// and the name it was given, if any, in one word (see the [module docs](self)).
pub(crate) struct Label {
    /// A `&'static Location` (lowest bit clear), or a `Box<Named>` (bit set).
    word: NonNull<()>,
}

/// A name, and when the named work began on its runtime's clock (only named work reads
/// the clock for it: unnamed work costs nothing more); in a label, with where the work
/// was made.
pub(crate) struct Named {
    pub(crate) name: Cow<'static, str>,
    pub(crate) since: Instant,
    /// Where the named work was made: set by [`Label::new`].
    site: &'static Location<'static>,
}

/// The tag bit of a boxed [`Named`].
const NAMED: usize = 1;

// The tag bit is free in the pointers of both.
const _: () = assert!(align_of::<Location<'static>>() > NAMED);
const _: () = assert!(align_of::<Named>() > NAMED);

// SAFETY: a label is a `&'static Location` or an owned `Box<Named>`, both `Send` and
// `Sync`, and reaches it only through `&self` (module docs).
unsafe impl Send for Label {}
// SAFETY: as for `Send`.
unsafe impl Sync for Label {}

impl Named {
    /// The name `name` of work that began at `since`.
    pub(crate) fn new(name: Cow<'static, str>, since: Instant) -> Named {
        Named {
            name,
            since,
            // A placeholder until the label is made.
            site: Location::caller(),
        }
    }
}

impl Label {
    /// Made at `site`, without a name.
    #[inline]
    pub(crate) fn at(site: &'static Location<'static>) -> Label {
        Label {
            word: NonNull::from(site).cast::<()>(),
        }
    }

    /// Made at `site`, called `name` if given.
    #[inline]
    pub(crate) fn new(site: &'static Location<'static>, name: Option<Box<Named>>) -> Label {
        match name {
            None => Label::at(site),
            Some(named) => Label::named(site, named),
        }
    }

    #[cold]
    fn named(site: &'static Location<'static>, mut named: Box<Named>) -> Label {
        named.site = site;
        let boxed = NonNull::from(Box::leak(named)).cast::<()>();
        Label {
            word: boxed.map_addr(|a| a | NAMED),
        }
    }

    /// The pointer of the label's box, if it has a name (the bit set), untagged.
    #[inline]
    fn boxed(&self) -> Option<*mut Named> {
        let word = self.word.as_ptr();
        (word.addr() & NAMED != 0).then(|| word.map_addr(|a| a & !NAMED).cast::<Named>())
    }

    /// The name and the rest, if the label has a name.
    #[inline]
    fn named_ref(&self) -> Option<&Named> {
        // SAFETY: with the bit set, the word is the pointer of the label's own
        // `Box<Named>`, tagged; untagged, it is that pointer, to a `Named` that lives as
        // long as the label and is never written while it does (module docs).
        self.boxed().map(|boxed| unsafe { &*boxed })
    }

    /// Where the task, nursery or scope was made.
    #[inline]
    pub(crate) fn site(&self) -> &'static Location<'static> {
        match self.named_ref() {
            Some(named) => named.site,
            // SAFETY: with the bit clear, the word is the `&'static Location` the label
            // was made with (module docs).
            None => unsafe { self.word.cast::<Location<'static>>().as_ref() },
        }
    }

    /// The name as a cancel reason carries it.
    pub(crate) fn name(&self) -> Option<Cow<'static, str>> {
        self.named_ref().map(|n| n.name.clone())
    }

    /// The name, borrowed.
    pub(crate) fn name_str(&self) -> Option<&str> {
        self.named_ref().map(|n| &*n.name)
    }

    /// This label, as a node of `kind` says it.
    pub(crate) fn labelled(&self, kind: Kind) -> Labelled<'_> {
        let named = self.named_ref();
        Labelled {
            kind,
            site: Some(self.site()),
            name: named.map(|n| &*n.name),
            since: named.map(|n| n.since),
        }
    }
}

impl Drop for Label {
    fn drop(&mut self) {
        if let Some(boxed) = self.boxed() {
            // SAFETY: the pointer of the label's own box, untagged (module docs), given
            // back once, here, with exclusive access; the label is not used again.
            drop(unsafe { Box::from_raw(boxed) });
        }
    }
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Label")
            .field("site", &self.site())
            .field("name", &self.name_str())
            .finish()
    }
}

#[cfg(all(test, not(hatchery_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_label_is_its_location() {
        let here = Location::caller();
        let label = Label::at(here);
        assert!(std::ptr::eq(label.site(), here));
        assert_eq!(label.name_str(), None);
        assert_eq!(label.name(), None);
        let labelled = label.labelled(Kind::Task);
        assert!(labelled.site.is_some_and(|s| std::ptr::eq(s, here)));
        assert!(labelled.name.is_none() && labelled.since.is_none());
        assert!(Label::new(here, None).name_str().is_none());
    }

    #[test]
    fn a_named_label_keeps_its_location_and_name() {
        let here = Location::caller();
        let since = Instant::now();
        let owned = Box::new(Named::new(Cow::Owned(String::from("fetcher")), since));
        let label = Label::new(here, Some(owned));
        assert!(std::ptr::eq(label.site(), here));
        assert_eq!(label.name_str(), Some("fetcher"));
        assert_eq!(label.name().as_deref(), Some("fetcher"));
        let labelled = label.labelled(Kind::Nursery);
        assert_eq!(labelled.name, Some("fetcher"));
        assert_eq!(labelled.since, Some(since));
        // Moved to another thread and read and dropped there.
        std::thread::spawn(move || {
            assert_eq!(label.name_str(), Some("fetcher"));
            assert!(std::ptr::eq(label.site(), here));
        })
        .join()
        .unwrap();
        let borrowed = Label::new(here, Some(Box::new(Named::new("static".into(), since))));
        assert_eq!(format!("{:?}", borrowed.name_str()), "Some(\"static\")");
    }
}
