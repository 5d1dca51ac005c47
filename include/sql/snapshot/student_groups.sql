SELECT g.student_group_id, g.school_id, g.group_code, g.name, g.owner_staff_id
FROM student_group g
JOIN school s ON s.school_id = g.school_id
WHERE s.is_active = 1
ORDER BY g.student_group_id
