//! What a grant permits: actions, purposes of use and sensitivity labels,
//! each a closed vocabulary encoded as a bit set (canonical by construction:
//! one bit per code, unknown bits refused).

use core::fmt;

/// Declares a closed code vocabulary and its bit set.
macro_rules! code_set {
    (
        $(#[$emeta:meta])* enum $name:ident;
        $(#[$smeta:meta])* set $set:ident($bits:ty);
        $( $(#[$vmeta:meta])* $variant:ident = $bit:literal, $code:literal; )+
    ) => {
        $(#[$emeta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in bit order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The bit index of this value in its set's encoding.
            pub const fn bit(self) -> u32 {
                match self { $($name::$variant => $bit,)+ }
            }

            /// The code used in FHIR and in text.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The value with text code `code` (exact), if any.
            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        $(#[$smeta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $set($bits);

        impl $set {
            /// Bits that name a known value.
            pub const KNOWN: $bits = 0 $(| (1 << $bit))+;

            /// The empty set.
            pub const fn empty() -> Self {
                $set(0)
            }

            /// Every known value.
            pub const fn all() -> Self {
                $set(Self::KNOWN)
            }

            /// The set from its encoded bits; `None` if an unknown bit is set.
            pub const fn from_bits(bits: $bits) -> Option<Self> {
                if bits & !Self::KNOWN != 0 { None } else { Some($set(bits)) }
            }

            /// The encoded bits.
            pub const fn bits(self) -> $bits {
                self.0
            }

            /// The set with `v` added.
            #[must_use]
            pub const fn with(self, v: $name) -> Self {
                $set(self.0 | (1 << v.bit()))
            }

            /// Whether `v` is in the set.
            pub const fn contains(self, v: $name) -> bool {
                self.0 & (1 << v.bit()) != 0
            }

            /// Whether every member of `self` is in `other`.
            pub const fn is_subset(self, other: Self) -> bool {
                self.0 & !other.0 == 0
            }

            /// Whether the set is empty.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The members, in bit order.
            pub fn iter(self) -> impl Iterator<Item = $name> {
                $name::ALL.iter().copied().filter(move |v| self.contains(*v))
            }
        }

        impl FromIterator<$name> for $set {
            fn from_iter<I: IntoIterator<Item = $name>>(iter: I) -> Self {
                iter.into_iter().fold($set::empty(), $set::with)
            }
        }

        impl fmt::Debug for $set {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.iter()).finish()
            }
        }
    };
}

code_set! {
    /// What the grantee may do with a record.
    enum Action;
    /// A set of [`Action`]s, encoded as one byte.
    set ActionSet(u8);
    /// Read (decrypt) the record. FHIR consentaction `access`.
    Read = 0, "read";
    /// Write a new version or amend. FHIR consentaction `correct`.
    Write = 1, "write";
    /// Pass access on by issuing a derived grant. FHIR consentaction `disclose`.
    Share = 2, "share";
}

code_set! {
    /// Purpose of use: HL7 v3 ActReason codes (PurposeOfUse value set,
    /// `http://terminology.hl7.org/CodeSystem/v3-ActReason`).
    enum Purpose;
    /// A set of [`Purpose`]s, encoded as a big-endian `u32`.
    set PurposeSet(u32);
    /// Treatment.
    Treat = 0, "TREAT";
    /// Emergency treatment.
    EmergencyTreat = 1, "ETREAT";
    /// Break the glass.
    BreakTheGlass = 2, "BTG";
    /// Care management.
    CareManagement = 3, "CAREMGT";
    /// Payment.
    Payment = 4, "HPAYMT";
    /// Healthcare operations.
    Operations = 5, "HOPERAT";
    /// Research.
    Research = 6, "HRESCH";
    /// Requested by the patient.
    PatientRequest = 7, "PATRQT";
    /// Requested by the patient's family.
    FamilyRequest = 8, "FAMRQT";
    /// Requested by a power of attorney.
    PowerOfAttorney = 9, "PWATRNY";
    /// Public health.
    PublicHealth = 10, "PUBHLTH";
    /// Legal.
    Legal = 11, "HLEGAL";
}

code_set! {
    /// Sensitivity labels (HL7 v3 ActCode, `http://terminology.hl7.org/CodeSystem/v3-ActCode`).
    /// A record carrying a label is excluded from a grant unless the grant
    /// names that label.
    enum Sensitivity;
    /// A set of [`Sensitivity`] labels, encoded as a big-endian `u16`.
    set SensitivitySet(u16);
    /// Substance abuse information (`ETH`).
    SubstanceUse = 0, "ETH";
    /// Substance use disorder records under 42 CFR Part 2 (`42CFRPart2`).
    Part2 = 1, "42CFRPart2";
    /// Psychiatry information (`PSY`).
    Psychiatry = 2, "PSY";
    /// Mental health information (`MH`).
    MentalHealth = 3, "MH";
    /// Psychotherapy notes (`PSYTHPN`).
    PsychotherapyNote = 4, "PSYTHPN";
    /// HIV/AIDS information (`HIV`).
    Hiv = 5, "HIV";
    /// Sexually transmitted disease information (`STD`).
    Std = 6, "STD";
    /// Genetic disease information (`GDIS`).
    Genetics = 7, "GDIS";
    /// Sexuality and reproductive health information (`SEX`).
    Reproductive = 8, "SEX";
    /// Sexual assault, abuse or domestic violence information (`SDV`).
    Violence = 9, "SDV";
    /// Adolescent information (`ADOL`).
    Adolescent = 10, "ADOL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_refuse_unknown_bits_and_compare_as_subsets() {
        assert_eq!(ActionSet::from_bits(0b1000), None);
        assert_eq!(ActionSet::all().bits(), 0b111);
        let rw: ActionSet = [Action::Read, Action::Write].into_iter().collect();
        assert!(rw.is_subset(ActionSet::all()));
        assert!(!ActionSet::all().is_subset(rw));
        assert_eq!(PurposeSet::KNOWN, 0x0fff);
        assert_eq!(SensitivitySet::KNOWN, 0x07ff);
        assert_eq!(PurposeSet::from_bits(1 << 12), None);
    }

    #[test]
    fn codes_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_code(p.code()), Some(*p));
        }
        for s in Sensitivity::ALL {
            assert_eq!(Sensitivity::from_code(s.code()), Some(*s));
        }
        assert_eq!(Purpose::from_code("treat"), None);
    }
}
