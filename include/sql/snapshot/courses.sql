-- Courses that have at least one section active on the as-of date.
SELECT c.course_id, c.course_number, c.title, c.department, c.subject_area
FROM course c
WHERE EXISTS (
    SELECT 1
    FROM section sec
    JOIN term t ON t.term_id = sec.term_id
    WHERE sec.course_id = c.course_id
      AND sec.is_active = 1
      AND t.school_year = :school_year
      AND COALESCE(sec.start_date, t.start_date) <= :as_of_date
      AND COALESCE(sec.end_date, t.end_date) >= :as_of_date
)
ORDER BY c.course_id
