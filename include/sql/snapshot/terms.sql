-- Every term of the selected school year (parents included, so academicSessions can be complete).
SELECT t.term_id, t.school_id, t.school_year, t.term_type, t.title, t.start_date, t.end_date, t.parent_term_id
FROM term t
WHERE t.school_year = :school_year
ORDER BY t.term_id
