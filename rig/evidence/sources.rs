//! The documents clauses cite, by title, publisher and revision as printed in them
//! (`docs/sources.md` is the same list for people), so a clause in a record or report can be
//! found without this repository: records keep the file name under `shared/seeds/`, the report
//! shows the title.

/// One cited document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// File name under `shared/seeds/` (what records carry as the clause's `source`).
    pub file: &'static str,
    /// Title as printed on the document.
    pub title: &'static str,
    /// Publisher.
    pub publisher: &'static str,
    /// Revision as printed, or what the document prints instead of one.
    pub revision: &'static str,
}

/// Every document a clause cites.
pub const SOURCES: &[Source] = &[
    Source {
        file: "004_d1f80f13afa7763c.txt",
        title: "Kamstrup 351 Combi communication interface specification",
        publisher: "Kamstrup A/S",
        revision: "module interface \"Valid for 5550-585 rev. C1\"; no document revision printed",
    },
    Source {
        file: "000_c06f58957f887af9.txt",
        title: "Kamstrup 351 Combi — Current transformer electricity meter (data sheet)",
        publisher: "Kamstrup A/S",
        revision: "no revision printed in the text",
    },
    Source {
        file: "001_fb0b65c21cb40e49.txt",
        title: "Kamstrup 351 Combi — Current transformer electricity meter (data sheet, second extraction)",
        publisher: "Kamstrup A/S",
        revision: "no revision printed in the text",
    },
    Source {
        file: "002_2f062e5fcd422fbd.txt",
        title: "Data sheet OMNIPOWER® three-phase",
        publisher: "Kamstrup A/S",
        revision: "no revision printed in the text",
    },
    Source {
        file: "003_d5a047765b630495.txt",
        title: "Data sheet OMNIPOWER® CT",
        publisher: "Kamstrup A/S",
        revision: "no revision printed in the text",
    },
];

/// The document a clause's `source` (a file name) names, when it is one of [`SOURCES`].
pub fn by_file(file: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.file == file)
}

/// A clause as a person finds it: `TITLE (PUBLISHER), §SECTION`; an unknown source by its name.
pub fn cite(file: &str, section: &str) -> String {
    match by_file(file) {
        Some(s) => format!("{} ({}), §{section}", s.title, s.publisher),
        None => format!("{file}, §{section}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every clause the profiles and cases cite names a document listed here.
    #[test]
    fn every_profile_source_is_listed() {
        use crate::meter::profile::{COMBI_351, OMNIPOWER_3PH, OMNIPOWER_CT};
        for p in [&COMBI_351, &OMNIPOWER_3PH, &OMNIPOWER_CT] {
            for f in p.sources {
                assert!(by_file(f).is_some(), "{f} of {} is not in SOURCES", p.name);
            }
        }
        let spec = crate::meter::config::MeterSpec::builtin_default();
        for c in crate::suite::CASES {
            let clause = (c.clause)(spec.profile);
            assert!(
                by_file(clause.source).is_some(),
                "{}: {} is not in SOURCES",
                c.id,
                clause.source
            );
        }
        assert!(cite("004_d1f80f13afa7763c.txt", "Note 1").starts_with(
            "Kamstrup 351 Combi communication interface specification (Kamstrup A/S), §Note 1"
        ));
    }
}
