-- SIS-neutral rostering model: the contract the extraction SQL reads.
-- A district DBA maps PowerSchool, Aeries, … onto these tables (views or a nightly copy); see docs/sis-model.md.
--
-- Portable DDL: runs unchanged on SQLite, PostgreSQL and MariaDB.
--   * flags are SMALLINT 0/1 (no BOOLEAN: SQLite has none, MariaDB aliases it to TINYINT)
--   * dates are DATE holding ISO 'YYYY-MM-DD'; every end date is INCLUSIVE (the last active day), NULL = open-ended
--   * identifiers are VARCHAR with a length (MariaDB cannot index unbounded TEXT)
--   * no reserved words as column names (no "primary", "period", "role", "group", "type")
-- Statements are separated by a semicolon at the end of a line (rostering.sis.schema splits on that).

CREATE TABLE district (
    district_id            VARCHAR(64)  NOT NULL PRIMARY KEY,
    name                   VARCHAR(255) NOT NULL,
    cds_district_code      VARCHAR(7),            -- 2-digit county + 5-digit district
    nces_id                VARCHAR(12),
    state_code             VARCHAR(2)
);

CREATE TABLE school (
    school_id                      VARCHAR(64)  NOT NULL PRIMARY KEY,  -- SIS key (PowerSchool SCHOOLS.SCHOOL_NUMBER, Aeries LOC.CD)
    district_id                    VARCHAR(64)  NOT NULL REFERENCES district (district_id),
    school_number                  VARCHAR(32)  NOT NULL,              -- the number staff know the school by
    name                           VARCHAR(255) NOT NULL,
    cds_code                       VARCHAR(14),                        -- 14-digit CDS code (CERS school_natural_id)
    nces_id                        VARCHAR(12),
    school_level                   VARCHAR(16),                        -- elementary | middle | high | other
    low_grade                      VARCHAR(2),                         -- CEDS grade code, e.g. TK, KG, 06
    high_grade                     VARCHAR(2),
    classification                 VARCHAR(16),                        -- public | charter | private
    is_active                      SMALLINT     NOT NULL DEFAULT 1,
    excluded_from_state_reporting  SMALLINT     NOT NULL DEFAULT 0,
    CONSTRAINT uq_school_number UNIQUE (school_number)
);

CREATE TABLE term (
    term_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    school_id        VARCHAR(64)  REFERENCES school (school_id),   -- NULL = district-wide calendar
    school_year      INTEGER      NOT NULL,                        -- spring year: 2026-27 -> 2027
    term_type        VARCHAR(16)  NOT NULL,                        -- schoolYear | semester | term | gradingPeriod
    title            VARCHAR(255) NOT NULL,
    start_date       DATE         NOT NULL,
    end_date         DATE         NOT NULL,
    parent_term_id   VARCHAR(64)  REFERENCES term (term_id)
);

CREATE TABLE course (
    course_id        VARCHAR(64)  NOT NULL PRIMARY KEY,
    course_number    VARCHAR(32)  NOT NULL,
    title            VARCHAR(255) NOT NULL,
    department       VARCHAR(64),
    subject_area     VARCHAR(64),                                  -- e.g. Mathematics, English Language Arts
    CONSTRAINT uq_course_number UNIQUE (course_number)
);

CREATE TABLE section (
    section_id        VARCHAR(64)  NOT NULL PRIMARY KEY,           -- SIS key (PowerSchool SECTIONS.ID, Aeries MST.SE+SC)
    school_id         VARCHAR(64)  NOT NULL REFERENCES school (school_id),
    course_id         VARCHAR(64)  NOT NULL REFERENCES course (course_id),
    term_id           VARCHAR(64)  NOT NULL REFERENCES term (term_id),
    section_number    VARCHAR(32)  NOT NULL,                       -- repeats across schools
    period_code       VARCHAR(32),
    class_expression  VARCHAR(64),                                 -- PowerSchool expression, e.g. 1(A)
    room              VARCHAR(64),
    caaspp_subject    VARCHAR(8),                                  -- ELA | Math | ALL | NULL (not a CAASPP section)
    class_type        VARCHAR(16)  NOT NULL DEFAULT 'scheduled',   -- homeroom | scheduled
    is_active         SMALLINT     NOT NULL DEFAULT 1,
    start_date        DATE,                                        -- NULL = the term's dates
    end_date          DATE
);

CREATE TABLE staff (
    staff_id           VARCHAR(64)  NOT NULL PRIMARY KEY,          -- SIS key (PowerSchool USERS.DCID, Aeries STF.ID)
    first_name         VARCHAR(255) NOT NULL,
    middle_name        VARCHAR(255),
    last_name          VARCHAR(255) NOT NULL,
    email              VARCHAR(255),
    username           VARCHAR(255),
    state_educator_id  VARCHAR(32),                                -- California SEID
    staff_role         VARCHAR(32)  NOT NULL,                      -- teacher | administrator | district_administrator | counselor | aide | other
    is_active          SMALLINT     NOT NULL DEFAULT 1,
    initial_password   VARCHAR(255)                                -- only where a vendor takes per-user passwords (Literably); else NULL
);

CREATE TABLE staff_school (
    staff_id    VARCHAR(64) NOT NULL REFERENCES staff (staff_id),
    school_id   VARCHAR(64) NOT NULL REFERENCES school (school_id),
    is_home     SMALLINT    NOT NULL DEFAULT 0,                    -- the staff member's home school
    PRIMARY KEY (staff_id, school_id)
);

CREATE TABLE section_staff (
    section_id   VARCHAR(64) NOT NULL REFERENCES section (section_id),
    staff_id     VARCHAR(64) NOT NULL REFERENCES staff (staff_id),
    staff_role   VARCHAR(16) NOT NULL,                             -- lead | co_teacher | job_share | aide
    start_date   DATE        NOT NULL,
    end_date     DATE,
    PRIMARY KEY (section_id, staff_id, start_date)
);

CREATE TABLE student (
    student_id                     VARCHAR(64)  NOT NULL PRIMARY KEY,  -- SIS local id (PowerSchool STUDENT_NUMBER, Aeries STU.ID)
    ssid                           VARCHAR(10),                        -- California SSID, 10 digits; NULL if not yet assigned
    first_name                     VARCHAR(255) NOT NULL,
    middle_name                    VARCHAR(255),
    last_name                      VARCHAR(255) NOT NULL,
    grade_level                    VARCHAR(2)   NOT NULL,              -- CEDS: PK TK KG 01 … 12
    birth_date                     DATE,
    email                          VARCHAR(255),
    username                       VARCHAR(255),
    counselor_staff_id             VARCHAR(64)  REFERENCES staff (staff_id),
    home_language_code             VARCHAR(8),                         -- CALPADS home language code (ISO 639-2 since 2023-24; older 2-digit codes, 00 = English, still accepted)
    reading_level                  VARCHAR(16),                        -- initial reading level (Literably), if kept
    reading_level_imputed          SMALLINT     NOT NULL DEFAULT 0,
    excluded_from_state_reporting  SMALLINT     NOT NULL DEFAULT 0
);

CREATE TABLE school_enrollment (
    student_id                     VARCHAR(64) NOT NULL REFERENCES student (student_id),
    school_id                      VARCHAR(64) NOT NULL REFERENCES school (school_id),
    entry_date                     DATE        NOT NULL,
    exit_date                      DATE,                               -- inclusive last day; NULL = still enrolled
    enrollment_status              VARCHAR(4)  NOT NULL,               -- CALPADS: 10 primary, 20 secondary, 30 short-term
    excluded_from_state_reporting  SMALLINT    NOT NULL DEFAULT 0,
    PRIMARY KEY (student_id, school_id, entry_date)
);

CREATE TABLE section_enrollment (
    student_id   VARCHAR(64) NOT NULL REFERENCES student (student_id),
    section_id   VARCHAR(64) NOT NULL REFERENCES section (section_id),
    entry_date   DATE        NOT NULL,
    exit_date    DATE,                                              -- inclusive last day; NULL = still enrolled
    PRIMARY KEY (student_id, section_id, entry_date)
);

CREATE TABLE student_program (
    student_id     VARCHAR(64) NOT NULL REFERENCES student (student_id),
    program_code   VARCHAR(32) NOT NULL,                            -- ELL | SPED | 504 | TITLE1 | GATE | FOSTER | HOMELESS | SED | …
    status_code    VARCHAR(32),                                     -- optional detail, e.g. ELAS code EL / RFEP / IFEP
    start_date     DATE        NOT NULL,
    end_date       DATE,
    PRIMARY KEY (student_id, program_code, start_date)
);

CREATE TABLE student_group (
    student_group_id  VARCHAR(64)  NOT NULL PRIMARY KEY,
    school_id         VARCHAR(64)  NOT NULL REFERENCES school (school_id),
    group_code        VARCHAR(32)  NOT NULL,
    name              VARCHAR(255) NOT NULL,
    owner_staff_id    VARCHAR(64)  REFERENCES staff (staff_id)
);

CREATE TABLE student_group_member (
    student_group_id  VARCHAR(64) NOT NULL REFERENCES student_group (student_group_id),
    student_id        VARCHAR(64) NOT NULL REFERENCES student (student_id),
    PRIMARY KEY (student_group_id, student_id)
);

-- Indexes on the foreign keys the snapshot queries join and filter on (PostgreSQL does not create them itself).
CREATE INDEX ix_school_district ON school (district_id);
CREATE INDEX ix_section_school ON section (school_id);
CREATE INDEX ix_section_course ON section (course_id);
CREATE INDEX ix_section_term ON section (term_id);
CREATE INDEX ix_staff_school_school ON staff_school (school_id);
CREATE INDEX ix_section_staff_staff ON section_staff (staff_id);
CREATE INDEX ix_student_counselor ON student (counselor_staff_id);
CREATE INDEX ix_school_enrollment_school ON school_enrollment (school_id);
CREATE INDEX ix_section_enrollment_section ON section_enrollment (section_id);
CREATE INDEX ix_student_group_school ON student_group (school_id);
CREATE INDEX ix_student_group_member_student ON student_group_member (student_id);
