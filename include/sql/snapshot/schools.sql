SELECT s.school_id, s.district_id, s.school_number, s.name, s.cds_code, s.nces_id, s.school_level,
       s.low_grade, s.high_grade, s.classification, s.excluded_from_state_reporting
FROM school s
WHERE s.is_active = 1
ORDER BY s.school_id
