package dbfx

// FamilyOf exposes the DSN sniffing to the tests.
var FamilyOf = familyOf
